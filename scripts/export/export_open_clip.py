#!/usr/bin/env python3
"""OpenAI CLIP or any open_clip model (open_clip create_model) → text + image towers in ONNX + a CLIP-score metric JSON.

    python3 scripts/export/export_open_clip.py --model ViT-L-14 --pretrained openai --out models/clip-l14
    python3 scripts/export/export_open_clip.py --model ViT-H-14 --pretrained laion2b_s32b_b79k --out models/clip-h14

--pretrained is an open_clip tag or a checkpoint file; OpenAI's weights get QuickGELU as in clip.load. The metric JSON
names the preprocessing "openai-clip" (PIL bicubic resize, torchvision CenterCrop: OpenAI clip.load's and open_clip's
val transform), `"pad_token_id": 0` (open_clip and clip.tokenize pad with 0) and the tokenizer files (vocab.json +
merges.txt written from open_clip's own BPE file, unless --tokenizer names one). --random-tiny builds a random small
open_clip config of the same CLIP class (tests). HPS (export_hps.py) and the aesthetic tower (export_aesthetic.py) reuse
this module.
"""
import argparse
import importlib.util
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

if importlib.util.find_spec('transformers') is not None:
    # open_clip imports transformers (for its HF text towers): through the shim, so that it is usable afterwards.
    common.import_transformers()
import open_clip  # noqa: E402
from open_clip import factory  # noqa: E402

TINY_MODEL = 'bdpo-tiny-vit'
# ViT-H-14 / ViT-L-14 at toy widths: same CLIP class, VisionTransformer and TextTransformer; full vocabulary and
# context, 224² input; the narrow text tower keeps the 49 408-row token table small.
TINY_CONFIG = {
    'embed_dim': 16,
    'vision_cfg': {'image_size': 224, 'layers': 2, 'width': 8, 'head_width': 4, 'patch_size': 32},
    'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 4, 'heads': 2, 'layers': 2},
}


def register_tiny_config():
    factory._MODEL_CONFIGS.setdefault(TINY_MODEL, TINY_CONFIG)
    return TINY_MODEL


def random_tiny_model(seed):
    common.seed_everything(seed)
    model = open_clip.create_model(register_tiny_config(), pretrained=None).eval()
    # open_clip's init scales weights for deep, wide towers: at toy widths every cosine would be ≈ 0.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.5)
    return model


def create_model(name, pretrained):
    """open_clip.create_model; OpenAI's checkpoints were trained with QuickGELU, which clip.load uses too."""
    if name == TINY_MODEL:
        register_tiny_config()
    return open_clip.create_model(name, pretrained=pretrained, force_quick_gelu=pretrained == 'openai').eval()


def read_state_dict(path):
    """A training checkpoint ({'state_dict': …}, keys maybe prefixed 'module.') or a bare state dict."""
    try:
        checkpoint = torch.load(path, map_location='cpu')
    except Exception as error:  # noqa: BLE001  (unpickling raises anything; all of it means "not a checkpoint")
        raise SystemExit(f'{path}: cannot read the checkpoint ({type(error).__name__}: {error})') from None
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SystemExit(f'{path}: expected a state dict or {{"state_dict": …}} of tensors')
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}


def load_state_dict(model, state, path):
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        # torch lists every missing and unexpected key; the first lines say which model it was made for.
        raise SystemExit(f'{path}: the weights do not fit this model: {str(error)[:600]}') from None
    return model


def load_state_dict_file(model, path):
    return load_state_dict(model, read_state_dict(path), path)


class TextTower(torch.nn.Module):
    """encode_text pools at the end-of-text token (the largest id) and reads no mask (the causal mask hides the padding
    behind it), so the export has input_ids only; `label` passes attention_mask only to models that take it."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return self.model.encode_text(input_ids)


class ImageTower(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model.encode_image(pixel_values)


def image_size(model):
    size = model.visual.image_size
    return size[0] if isinstance(size, (tuple, list)) else size


def export_image_tower(model, path):
    return common.export_onnx(ImageTower(model), (common.sample_pixels(size=image_size(model)),), path, ['pixel_values'],
                              ['image_embeds'], common.IMAGE_AXES)


def export_towers(model, out, prefix):
    """Writes <prefix>-text.onnx and <prefix>-vision.onnx; returns the metric JSON's model keys."""
    ids, _ = common.sample_text_inputs()
    common.export_onnx(TextTower(model), (ids,), os.path.join(out, f'{prefix}-text.onnx'), ['input_ids'], ['text_embeds'],
                       {'input_ids': {0: 'batch_size', 1: 'sequence_length'}, 'text_embeds': {0: 'batch_size'}})
    export_image_tower(model, os.path.join(out, f'{prefix}-vision.onnx'))
    return {'text_model': f'{prefix}-text.onnx', 'vision_model': f'{prefix}-vision.onnx'}


def tokenizer_for(tokenizer_arg, out):
    """The metric JSON's tokenizer: --tokenizer as given, else open_clip's BPE written as vocab.json + merges.txt."""
    if tokenizer_arg:
        return common.place_tokenizer(tokenizer_arg, out)
    common.bpe_files_from_open_clip(out)
    return 'vocab.json'


def export(model, out, name, version, tokenizer, kind='clip', preprocess='openai-clip', score=None, extra=None):
    os.makedirs(out, exist_ok=True)
    spec = {'name': name, 'kind': kind, 'version': version, **export_towers(model, out, name), 'tokenizer': tokenizer,
            'pad_token_id': 0, 'preprocess': preprocess}
    size = image_size(model)
    if size != 224:
        spec['image_size'] = size
    mean = list(getattr(model.visual, 'image_mean', None) or common.CLIP_MEAN)
    std = list(getattr(model.visual, 'image_std', None) or common.CLIP_STD)
    if [round(x, 6) for x in mean] != [round(x, 6) for x in common.CLIP_MEAN]:
        spec['image_mean'] = mean
    if [round(x, 6) for x in std] != [round(x, 6) for x in common.CLIP_STD]:
        spec['image_std'] = std
    if score:
        spec['score'] = score
    spec.update(extra or {})
    return common.write_metric_json(out, f'{name}.json', spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument('--model', help='open_clip model name, e.g. ViT-L-14')
    source.add_argument('--random-tiny', type=int, metavar='SEED', help='random small open_clip model (tests)')
    ap.add_argument('--pretrained', help='open_clip pretrained tag (openai, laion2b_s32b_b79k, …) or checkpoint file')
    ap.add_argument('--out', required=True)
    ap.add_argument('--name', default='clip')
    ap.add_argument('--version', help='version recorded with the scores (default: model/pretrained)')
    ap.add_argument('--score', choices=['cos', 'clip-100'], help='cosine, or torchmetrics-style 100·max(cos, 0)')
    ap.add_argument('--tokenizer', help='tokenizer.json / vocab.json to copy, or keep:PATH to name it in place')
    args = ap.parse_args()
    if args.random_tiny is not None:
        model = random_tiny_model(args.random_tiny)
        version = args.version or f'random-tiny-open-clip-seed{args.random_tiny}'
    else:
        if not args.pretrained:
            ap.error('--pretrained is required with --model')
        model = create_model(args.model, args.pretrained)
        version = args.version or f'{args.model}/{os.path.basename(args.pretrained)}'
    os.makedirs(args.out, exist_ok=True)
    print(export(model, args.out, args.name, version, tokenizer_for(args.tokenizer, args.out), score=args.score))


if __name__ == '__main__':
    main()
