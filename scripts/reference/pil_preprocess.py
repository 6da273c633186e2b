#!/usr/bin/python3
"""Reference CLIP image preprocessing, as Hugging Face's CLIPImageProcessor does it with PIL.

Writes the fixture images (made once from Debian's python3-skimage sample photographs) and, for each,
the preprocessed pixels that src/label/preprocess.ts must reproduce.

Run from the repo root:  /usr/bin/python3 scripts/reference/pil_preprocess.py [--remake-inputs]

The steps mirror transformers' CLIPImageProcessor (do_convert_rgb, resize shortest_edge, center_crop,
rescale, normalize) without needing transformers installed:
  - img.convert('RGB') unless already RGB: alpha is dropped (no compositing), L/P/CMYK use PIL's own
    conversions, no ICC transform, no EXIF rotation;
  - get_resize_output_image_size: long side = int(size * long / short) (truncation), unchanged if the short
    side already equals size; PIL resize with BICUBIC and reducing_gap=None;
  - center_crop: top = (h - crop) // 2, left = (w - crop) // 2 (floor; torchvision's CenterCrop rounds instead);
  - rescale: float64 * (1/255) then float32; normalize: (x - mean) / std in float32.
Every image is referenced at size 224 / crop 224; a few also at other sizes (and crop < size, which
CLIPImageProcessor allows) to cover the options. Output per case: <stem>[-<size>-<crop>].u8.gz, the gzipped
cropped 8-bit RGB pixels (HWC); plus manifest.json (geometry, input sha256, sum of the float32 tensor).
PIL's resize returns 8-bit pixels and the crop is taken from them, so this array determines the reference
tensor exactly (tensor = (u8 / 255 - mean) / std); storing it instead of float32 keeps the folder < 2 MB.
"""
import argparse
import gzip
import hashlib
import json
import os
import shutil

import numpy as np
from PIL import Image

SKIMAGE_DATA = '/usr/lib/python3/dist-packages/skimage/data'
OUT = 'test/fixtures/preprocess'
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def src(name):
    return Image.open(os.path.join(SKIMAGE_DATA, name))


def make_inputs():
    """Build the fixture inputs. Re-encoding as JPEG q90 keeps the folder small."""
    os.makedirs(OUT, exist_ok=True)
    made = []

    def jpeg(img, name, **kw):
        img.save(os.path.join(OUT, name), quality=90, **kw)
        made.append(name)

    def png(img, name):
        img.save(os.path.join(OUT, name), optimize=True)
        made.append(name)

    jpeg(src('astronaut.png').convert('RGB'), 'astronaut.jpg')                  # square 512x512
    jpeg(src('coffee.png').convert('RGB'), 'coffee.jpg')                        # landscape 600x400
    jpeg(src('chelsea.png').convert('RGB'), 'chelsea.jpg')                      # landscape 451x300, odd width
    # rocket.jpg is kept byte-for-byte: a real camera JPEG with an embedded ICC profile (PIL ignores it).
    shutil.copyfile(os.path.join(SKIMAGE_DATA, 'rocket.jpg'), os.path.join(OUT, 'rocket.jpg'))
    made.append('rocket.jpg')
    jpeg(src('camera.png').convert('L'), 'camera-grey.jpg')                     # 8-bit greyscale JPEG
    # Portrait crop whose resized height (395) makes floor and round centre crops differ by one row.
    jpeg(src('motorcycle_left.png').convert('RGB').crop((250, 0, 533, 500)), 'motorcycle-portrait.jpg')
    # Short side already 224: the reference skips the resize.
    jpeg(src('hubble_deep_field.jpg').convert('RGB').crop((100, 100, 324, 401)), 'hubble-224.jpg')
    # EXIF orientation 6 ("rotate 90 CW to display"): CLIPImageProcessor ignores it, so must we.
    exif = Image.Exif()
    exif[0x0112] = 6
    jpeg(src('coffee.png').convert('RGB').crop((0, 0, 360, 260)), 'coffee-exif6.jpg', exif=exif.tobytes())
    # RGBA, smaller than 224 (an upscale), alpha ramp with fully transparent columns that still hold colour.
    rgb = src('chelsea.png').convert('RGB').crop((150, 60, 350, 210))           # 200x150
    w, h = rgb.size
    alpha = np.tile(np.clip(np.linspace(-64, 320, w), 0, 255).astype(np.uint8), (h, 1))
    rgba = rgb.copy()
    rgba.putalpha(Image.fromarray(alpha, 'L'))
    png(rgba, 'chelsea-rgba.png')
    # Palette (P mode) PNG.
    png(src('coffee.png').convert('RGB').crop((200, 80, 520, 320)).quantize(colors=64), 'coffee-palette.png')
    # CMYK JPEG (PIL's naive CMYK<->RGB conversions; no ICC profile embedded).
    jpeg(src('astronaut.png').convert('RGB').crop((100, 0, 360, 300)).convert('CMYK'), 'astronaut-cmyk.jpg')
    return made


def output_size(width, height, size):
    short, long = (width, height) if width <= height else (height, width)
    if short == size:
        return width, height
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def preprocess(path, size, crop):
    img = Image.open(path)
    mode = img.mode
    if img.mode != 'RGB':
        img = img.convert('RGB')
    arr = np.array(img)
    height, width = arr.shape[:2]
    new_w, new_h = output_size(width, height, size)
    pil = Image.fromarray(arr)
    if (new_w, new_h) != pil.size:
        pil = pil.resize((new_w, new_h), resample=Image.BICUBIC, reducing_gap=None)
    arr = np.array(pil)
    top, left = (new_h - crop) // 2, (new_w - crop) // 2
    arr = arr[top:top + crop, left:left + crop]
    info = {'mode': mode, 'width': width, 'height': height, 'resized': [new_w, new_h], 'crop': [left, top]}
    return np.ascontiguousarray(arr, dtype=np.uint8), info


def normalise(hwc_u8):
    """The rest of CLIPImageProcessor: rescale + normalize, CHW float32 (what the model receives)."""
    x = (hwc_u8.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


# (file, size, crop) beyond the 224/224 case of every image; small crops keep the folder small.
EXTRA_CASES = [('motorcycle-portrait.jpg', 96, 80), ('hubble-224.jpg', 336, 128), ('chelsea-rgba.png', 112, 112)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--remake-inputs', action='store_true')
    args = ap.parse_args()
    manifest_path = os.path.join(OUT, 'manifest.json')
    if args.remake_inputs or not os.path.exists(manifest_path):
        inputs = make_inputs()
    else:
        with open(manifest_path) as f:
            inputs = list(dict.fromkeys(e['file'] for e in json.load(f)['cases']))
    cases = [(name, 224, 224) for name in inputs] + EXTRA_CASES
    entries = []
    for name, size, crop in cases:
        pixels, info = preprocess(os.path.join(OUT, name), size, crop)
        stem = os.path.splitext(name)[0]
        ref = f'{stem}.u8.gz' if (size, crop) == (224, 224) else f'{stem}-{size}-{crop}.u8.gz'
        # mtime=0 keeps the gzip bytes reproducible.
        with open(os.path.join(OUT, ref), 'wb') as raw, gzip.GzipFile(fileobj=raw, mode='wb', mtime=0) as gz:
            gz.write(pixels.tobytes())
        tensor = normalise(pixels)
        info['tensor_sum'] = float(tensor.astype(np.float64).sum())
        with open(os.path.join(OUT, name), 'rb') as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        entries.append({'file': name, 'sha256': digest, 'size': size, 'crop_size': crop, 'reference': ref, **info})
        print(name, size, crop, info)
    manifest = {
        'about': 'CLIPImageProcessor-equivalent PIL reference; made by scripts/reference/pil_preprocess.py',
        'mean': MEAN.tolist(),
        'std': STD.tolist(),
        'layout': 'uint8 RGB, HWC, crop_size x crop_size, gzip; tensor = (u8 / 255 - mean) / std as CHW float32',
        'pil': Image.__version__,
        'numpy': np.__version__,
        'cases': entries,
    }
    with open(manifest_path, 'w') as f:
        json.dump(manifest, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()
