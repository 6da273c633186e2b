#!/usr/bin/env python3
"""test/fixtures/export/: tiny random models of each metric's real architecture, exported by the exporters of this
folder, and the scores the real libraries give them on real photographs with their own preprocessing.

    python3 scripts/export/make_fixtures.py [--out DIR]   (a Python with Debian's torch 1.13 / torchvision 0.14 and
                                                          pip's transformers + open_clip_torch; default DIR is
                                                          test/fixtures/export, which it replaces)

Each model is saved and loaded back the way a real checkpoint is (CLIPModel folder, HPS training checkpoint), exported,
and scored by the library itself: transformers' CLIPImageProcessor + CLIPTokenizerFast + CLIPModel for PickScore and
HF CLIP (PickScore's own formula: logit_scale.exp() · cos), open_clip's val transform + tokenizer + encode_* for
open_clip CLIP and the aesthetic tower (the MLP on the L2-normalised embedding, as the predictor's code runs it),
HPSv2's val transform (ToTensor, bicubic Resize on the tensor, CenterCrop) for HPS. test/export-scripts/ compares
`bdpo label` on the exported files with these scores.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402
import export_aesthetic  # noqa: E402
import export_hf_clip  # noqa: E402
import export_hps  # noqa: E402
import export_open_clip as oc  # noqa: E402
import open_clip  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_OUT = os.path.join(REPO, 'test/fixtures/export')
PHOTOS_DIR = os.path.join(REPO, 'test/fixtures/preprocess')
CLIP_DIR = os.path.join(REPO, 'test/fixtures/clip')
TOKENIZER = os.path.join(CLIP_DIR, 'tokenizer.json')

# Several aspect ratios and modes: square, landscape and portrait, an odd crop difference (640×479 → offset 37.5),
# upscales (151×101, 180×131 palette), a 3.9× shrink, greyscale, greyscale + alpha, RGBA, palette, CMYK.
PHOTOS = [
    ('astronaut.jpg', 'an astronaut in a white space suit'),
    ('coffee.jpg', 'a cup of coffee on a saucer'),
    ('chelsea.jpg', 'a ginger cat looking sideways'),
    ('rocket.jpg', 'a rocket on the launch pad'),
    ('motorcycle-portrait.jpg', 'a red motorcycle, portrait photo'),
    ('motorcycle-640x479.jpg', 'a motorcycle parked in a garage'),
    ('coffee-small.jpg', 'a close up of coffee foam'),
    ('hubble-large.jpg', 'deep field image of distant galaxies'),
    ('camera-grey.jpg', 'a black and white photo of a cameraman'),
    ('camera-la.png', 'a cameraman fading into transparency'),
    ('chelsea-rgba.png', 'a cat with a transparent background'),
    ('coffee-palette.png', 'coffee with few colours'),
    ('chelsea-palette-small.png', 'a small picture of a cat'),
    ('astronaut-cmyk.jpg', 'an astronaut, printed in CMYK'),
]


def load_photo(name):
    return Image.open(os.path.join(PHOTOS_DIR, name))


def hf_scores(model, kind):
    transformers = common.import_transformers()
    processor = transformers.CLIPImageProcessor()
    tokenizer = transformers.CLIPTokenizerFast.from_pretrained(CLIP_DIR)
    images = [load_photo(name) for name, _ in PHOTOS]
    prompts = [prompt for _, prompt in PHOTOS]
    with torch.no_grad():
        pixels = processor(images=images, return_tensors='pt')['pixel_values']
        text = tokenizer(prompts, padding=True, truncation=True, max_length=77, return_tensors='pt')
        image_embs = model.get_image_features(pixel_values=pixels)
        text_embs = model.get_text_features(input_ids=text['input_ids'], attention_mask=text['attention_mask'])
        image_embs = image_embs / image_embs.norm(dim=-1, keepdim=True)
        text_embs = text_embs / text_embs.norm(dim=-1, keepdim=True)
        cos = (image_embs * text_embs).sum(-1)
        scores = model.logit_scale.exp() * cos if kind == 'pickscore' else cos
    return [float(x) for x in scores]


def hpsv2_transform(image, antialias):
    """HPSv2's val transform as its open_clip fork writes it: RGB, ToTensor, Resize(224, BICUBIC), CenterCrop, Normalize."""
    x = TF.to_tensor(image.convert('RGB'))
    x = TF.resize(x, 224, interpolation=InterpolationMode.BICUBIC, antialias=antialias)
    x = TF.center_crop(x, 224)
    return TF.normalize(x, common.CLIP_MEAN, common.CLIP_STD)


def open_clip_embeddings(model, transform):
    tokenizer = open_clip.get_tokenizer(oc.TINY_MODEL)
    with torch.no_grad():
        pixels = torch.stack([transform(load_photo(name)) for name, _ in PHOTOS])
        image = model.encode_image(pixels)
        text = model.encode_text(tokenizer([prompt for _, prompt in PHOTOS]))
    return image, text


def cosines(image, text):
    image = image / image.norm(dim=-1, keepdim=True)
    text = text / text.norm(dim=-1, keepdim=True)
    return [float(x) for x in (image * text).sum(-1)]


def aesthetic_scores(vision, head):
    transform = open_clip.image_transform(224, is_train=False)
    with torch.no_grad():
        features = vision.encode_image(torch.stack([transform(load_photo(name)) for name, _ in PHOTOS])).numpy()
    # improved-aesthetic-predictor's normalized(): numpy L2 norm, then the MLP in float32.
    norm = np.atleast_1d(np.linalg.norm(features, 2, -1))
    norm[norm == 0] = 1
    embedding = features / np.expand_dims(norm, -1)
    with torch.no_grad():
        return [float(x) for x in head(torch.from_numpy(embedding).float())[:, 0]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=DEFAULT_OUT, help='folder to (re)create; default test/fixtures/export')
    out = os.path.abspath(ap.parse_args().out)
    if os.path.isdir(out):
        # Only a folder this script made: the manifest says so.
        if os.listdir(out) and not os.path.exists(os.path.join(out, 'manifest.json')):
            raise SystemExit(f'{out}: not empty and not made by make_fixtures.py (no manifest.json); refusing to replace it')
        shutil.rmtree(out)
    os.makedirs(out)
    make(out)


def make(out):
    keep_tokenizer = f'keep:{TOKENIZER}'
    expected = {}
    with tempfile.TemporaryDirectory() as tmp:
        # open_clip's BPE is the tokenizer the repository keeps: the open_clip exporters' vocab.json + merges.txt.
        common.bpe_files_from_open_clip(tmp)
        for file in ['vocab.json', 'merges.txt']:
            with open(os.path.join(tmp, file), 'rb') as a, open(os.path.join(CLIP_DIR, file), 'rb') as b:
                assert a.read() == b.read(), f'open_clip BPE {file} differs from test/fixtures/clip/{file}'

        # PickScore (full export) and HF CLIP (split towers), one CLIPModel saved and read back as a checkpoint folder.
        hf = export_hf_clip.random_tiny_model(11, logit_scale=100.0)
        hf.save_pretrained(os.path.join(tmp, 'hf'))
        hf = export_hf_clip.load_model(os.path.join(tmp, 'hf'))
        export_hf_clip.export(hf, out, 'pickscore', 'full', 'pickscore', 'tiny-pickscore (random CLIPModel, seed 11)',
                              common.place_tokenizer(keep_tokenizer, out))
        expected['pickscore'] = hf_scores(hf, 'pickscore')
        export_hf_clip.export(hf, out, 'clip', 'split', 'hf-clip', 'tiny-hf-clip (random CLIPModel, seed 11)',
                              common.place_tokenizer(keep_tokenizer, out), score='cos')
        expected['hf-clip'] = hf_scores(hf, 'clip')

        # HPS: a random open_clip model saved as a training checkpoint ({'state_dict'}, 'module.' keys) and loaded back.
        trained = oc.random_tiny_model(21)
        checkpoint = os.path.join(tmp, 'hps.pt')
        torch.save({'epoch': 1, 'state_dict': {f'module.{k}': v for k, v in trained.state_dict().items()}}, checkpoint)
        hps = export_hps.load_hps(checkpoint, arch=oc.register_tiny_config())
        export_hps.export(hps, out, 'hps', 'tiny-hps (random open_clip, seed 21)', common.place_tokenizer(keep_tokenizer, out))
        for name, antialias in [('hps', True), ('hps-legacy', False)]:
            image, text = open_clip_embeddings(hps, lambda im, a=antialias: hpsv2_transform(im, a))
            expected[name] = cosines(image, text)
        # hpsv2-legacy: the same towers under the other profile, written as export_hps.py --legacy-preprocess does.
        with open(os.path.join(out, 'hps.json')) as f:
            legacy = json.load(f)
        legacy.update(name='hps-legacy', version=f"{legacy['version']} hpsv2-legacy", preprocess='hpsv2-legacy')
        common.write_metric_json(out, 'hps-legacy.json', legacy)

        # OpenAI / open_clip CLIP and the aesthetic predictor on its image tower, as the real pair shares ViT-L/14.
        clip = oc.random_tiny_model(31)
        oc.export(clip, out, 'open-clip', 'tiny-open-clip (random open_clip, seed 31)',
                  common.place_tokenizer(keep_tokenizer, out), score='cos')
        expected['open-clip'] = cosines(*open_clip_embeddings(clip, open_clip.image_transform(224, is_train=False)))
        head = export_aesthetic.random_tiny_head(32, clip.text_projection.shape[1])
        export_aesthetic.export(None, head, out, 'aesthetic', 'tiny-aesthetic (random MLP, seed 32)', 'open-clip-vision.onnx')
        expected['aesthetic'] = aesthetic_scores(clip, head)

    with open(os.path.join(out, 'expected.json'), 'w') as f:
        json.dump({'photos_dir': os.path.relpath(PHOTOS_DIR, out),
                   'photos': [{'file': name, 'prompt': prompt, 'sha256': common.sha256(os.path.join(PHOTOS_DIR, name))}
                              for name, prompt in PHOTOS],
                   'scores': expected}, f, indent=1)
        f.write('\n')
    files = sorted(f for f in os.listdir(out) if f != 'manifest.json')
    manifest = {
        'about': 'made by scripts/export/make_fixtures.py: tiny random models of the real architectures, exported by '
                 'scripts/export/export_*.py, and the libraries\' own scores in expected.json',
        'versions': common.versions(),
        'files': {name: common.sha256(os.path.join(out, name)) for name in files},
        'bytes': sum(os.path.getsize(os.path.join(out, name)) for name in files),
    }
    with open(os.path.join(out, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
        f.write('\n')
    print(f"{out}: {len(files)} files, {manifest['bytes']} bytes")


if __name__ == '__main__':
    main()
