#!/usr/bin/python3
"""Reference tensors for the preprocessing profiles (src/models/preprocess-profiles.ts), made with torch/torchvision.

Run from the repo root with Debian's python3-torch / python3-torchvision / python3-pil / python3-skimage:
    /usr/bin/python3 scripts/reference/torchvision_preprocess.py [--remake-inputs]

Profiles, each written as its reference code runs it:
  hf-clip       CLIPImageProcessor (scripts/reference/pil_preprocess.py): convert('RGB'), PIL bicubic, crop floor.
  openai-clip   OpenAI clip.load's transform (= open_clip's standard val transform):
                Resize(size, BICUBIC) on the PIL image in its own mode, CenterCrop(crop) (offset round()),
                convert('RGB'), ToTensor, Normalize. PIL resizes P (and 1) images NEAREST, RGBA/LA premultiplied.
  hpsv2         HPSv2's val transform: convert('RGB'), ToTensor FIRST, Resize(size, BICUBIC, antialias=True)
                on the float tensor, CenterCrop(crop), Normalize (torchvision >= 0.17's default antialias).
  hpsv2-legacy  the same with antialias=False (torchvision < 0.17 on tensors): bicubic a = -0.75, no clamp.
8-bit profiles (hf-clip, openai-clip) store the cropped uint8 RGB pixels (HWC, gzip): the tensor follows from them
exactly. An openai-clip case whose pixels equal hf-clip's stores nothing and points at the hf-clip file.
Float profiles store the normalised float32 tensor (CHW, little-endian, gzip), only rows y % ROW_STEP == 0
(every 4th for crops < 160) and the last row of each channel plane (every column, both edges): small fixtures. Writes test/fixtures/preprocess/profiles.json.
"""
import argparse
import gzip
import hashlib
import json
import os
import sys

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pil_preprocess  # noqa: E402  (the hf-clip reference)

SKIMAGE_DATA = '/usr/lib/python3/dist-packages/skimage/data'
OUT = 'test/fixtures/preprocess'
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
ROW_STEP = 16

# The inputs pil_preprocess.py made, plus the ones below.
OLD_INPUTS = ['astronaut.jpg', 'coffee.jpg', 'chelsea.jpg', 'rocket.jpg', 'camera-grey.jpg', 'motorcycle-portrait.jpg',
              'hubble-224.jpg', 'coffee-exif6.jpg', 'chelsea-rgba.png', 'coffee-palette.png', 'astronaut-cmyk.jpg']
NEW_INPUTS = ['motorcycle-640x479.jpg', 'coffee-small.jpg', 'hubble-large.jpg', 'camera-la.png', 'chelsea-palette-small.png']


def make_inputs():
    def src(name):
        return Image.open(os.path.join(SKIMAGE_DATA, name))

    # 640x479: resized 299x224, crop offset 37.5 (floor 37, round 38).
    src('motorcycle_left.png').convert('RGB').crop((60, 10, 700, 489)).save(os.path.join(OUT, NEW_INPUTS[0]), quality=85)
    # 151x101 RGB: an upscale (x2.2) with an odd width.
    src('coffee.png').convert('RGB').crop((300, 150, 451, 251)).save(os.path.join(OUT, NEW_INPUTS[1]), quality=90)
    # 1000x872 -> 256x224: a 3.9x shrink, the antialiasing kernel at its widest here.
    src('hubble_deep_field.jpg').convert('RGB').save(os.path.join(OUT, NEW_INPUTS[2]), quality=75)
    # Greyscale with an alpha ramp (mode LA), 300x230.
    grey = src('camera.png').convert('L').crop((100, 150, 400, 380))
    w, h = grey.size
    alpha = np.tile(np.clip(np.linspace(-80, 330, w), 0, 255).astype(np.uint8), (h, 1))
    la = Image.merge('LA', [grey, Image.fromarray(alpha, 'L')])
    la.save(os.path.join(OUT, NEW_INPUTS[3]), optimize=True)
    # Palette image smaller than 224 (PIL enlarges a P image NEAREST in the openai-clip path), 180x131.
    src('chelsea.png').convert('RGB').crop((120, 60, 300, 191)).quantize(colors=48).save(
        os.path.join(OUT, NEW_INPUTS[4]), optimize=True)


def openai_clip(path, size, crop):
    img = Image.open(path)
    img = TF.resize(img, size, interpolation=InterpolationMode.BICUBIC)
    img = TF.center_crop(img, crop)
    img = img.convert('RGB')
    return np.ascontiguousarray(np.array(img), dtype=np.uint8)


def hpsv2(path, size, crop, antialias):
    img = Image.open(path).convert('RGB')
    x = TF.to_tensor(img)
    x = TF.resize(x, size, interpolation=InterpolationMode.BICUBIC, antialias=antialias)
    x = TF.center_crop(x, crop)
    x = TF.normalize(x, MEAN, STD)
    return np.ascontiguousarray(x.numpy(), dtype=np.float32)


def stored_rows(crop):
    step = ROW_STEP if crop >= 160 else 4
    return sorted(set(range(0, crop, step)) | {crop - 1})


def write_gz(name, data):
    # mtime=0 keeps the gzip bytes reproducible.
    with open(os.path.join(OUT, name), 'wb') as raw, gzip.GzipFile(fileobj=raw, mode='wb', mtime=0) as gz:
        gz.write(data)


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--remake-inputs', action='store_true')
    args = ap.parse_args()
    if args.remake_inputs or not all(os.path.exists(os.path.join(OUT, n)) for n in NEW_INPUTS):
        make_inputs()
    cases = [(name, 224, 224) for name in OLD_INPUTS + NEW_INPUTS]
    cases += [('motorcycle-portrait.jpg', 96, 80), ('chelsea-rgba.png', 112, 112), ('hubble-large.jpg', 64, 57),
              ('camera-la.png', 63, 63)]
    entries = []
    for name, size, crop in cases:
        path = os.path.join(OUT, name)
        stem = os.path.splitext(name)[0]
        tag = '' if (size, crop) == (224, 224) else f'-{size}-{crop}'
        mode = Image.open(path).mode
        base = {'file': name, 'sha256': sha256(path), 'mode': mode, 'size': size, 'crop_size': crop}
        hf, info = pil_preprocess.preprocess(path, size, crop)
        hf_ref = f'{stem}{tag}.u8.gz'
        hf_path = os.path.join(OUT, hf_ref)
        if name in NEW_INPUTS or not os.path.exists(hf_path):
            write_gz(hf_ref, hf.tobytes())
        else:
            with gzip.open(hf_path) as f:
                assert f.read() == hf.tobytes(), f'{hf_ref} is not what pil_preprocess.py makes'
        entries.append({**base, 'profile': 'hf-clip', 'reference': hf_ref, 'encoding': 'u8-hwc', **info})
        oa = openai_clip(path, size, crop)
        if np.array_equal(oa, hf):
            oa_ref = hf_ref
        else:
            oa_ref = f'{stem}{tag}.openai-clip.u8.gz'
            write_gz(oa_ref, oa.tobytes())
        diff = int(np.abs(oa.astype(np.int16) - hf.astype(np.int16)).max())
        entries.append({**base, 'profile': 'openai-clip', 'reference': oa_ref, 'encoding': 'u8-hwc',
                        'max_abs_diff_vs_hf_clip_u8': diff})
        rows = stored_rows(crop)
        for profile, antialias in [('hpsv2', True), ('hpsv2-legacy', False)]:
            x = hpsv2(path, size, crop, antialias)
            ref = f'{stem}{tag}.{profile}.f32.gz'
            write_gz(ref, np.ascontiguousarray(x[:, rows, :]).astype('<f4').tobytes())
            hf_tensor = pil_preprocess.normalise(hf)
            entries.append({**base, 'profile': profile, 'reference': ref, 'encoding': 'f32-chw-rows', 'rows': rows,
                            'antialias': antialias, 'min': float(x.min()), 'max': float(x.max()),
                            'mean_abs_diff_vs_hf_clip': float(np.abs(x - hf_tensor).mean())})
        print(name, size, crop, mode, 'openai-clip vs hf-clip max', diff)
    manifest = {
        'about': 'preprocessing profile references; made by scripts/reference/torchvision_preprocess.py',
        'mean': MEAN,
        'std': STD,
        'layouts': {
            'u8-hwc': 'uint8 RGB, HWC, crop x crop, gzip; tensor = (u8 / 255 - mean) / std as CHW float32',
            'f32-chw-rows': 'float32 LE normalised tensor, CHW, only the listed rows of each plane, gzip',
        },
        'versions': {'torch': torch.__version__, 'torchvision': torchvision.__version__, 'pil': PIL.__version__,
                     'numpy': np.__version__, 'python': sys.version.split()[0]},
        'cases': entries,
    }
    with open(os.path.join(OUT, 'profiles.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    torch.set_num_threads(1)
    main()
