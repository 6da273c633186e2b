#!/usr/bin/env python3
"""PickScore_v1 or any Hugging Face CLIP checkpoint (transformers CLIPModel) → ONNX + metric JSON.

    python3 scripts/export/export_hf_clip.py --model yuvalkirstain/PickScore_v1 --kind pickscore --out models/pickscore
    python3 scripts/export/export_hf_clip.py --model openai/clip-vit-large-patch14 --kind clip --layout split \
        --out models/clip-l14

--model is a local folder or a hub id that CLIPModel.from_pretrained reads. --layout full writes one CLIP export
(input_ids, attention_mask, pixel_values → text_embeds, image_embeds, logits_per_image); split writes a text and an
image tower. The tokenizer.json of the checkpoint (or --tokenizer) is copied beside them; the metric JSON names the
preprocessing "hf-clip" (CLIPImageProcessor) and, for PickScore, the model's own logit_scale (exp of its parameter).
--random-tiny builds a randomly initialised small CLIPConfig of the same CLIPModel class instead (tests).
"""
import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

transformers = common.import_transformers()
CLIPConfig = transformers.CLIPConfig
CLIPModel = transformers.CLIPModel

PICKSCORE_PROCESSOR = 'laion/CLIP-ViT-H-14-laion2B-s32B-b79K'


def tiny_config(text_width=4, vision_width=8, embed_dim=16):
    """A CLIPConfig of the real architecture at toy widths: 224² input, patch 32, two layers per tower, full vocabulary
    (the token table is the bulk of the file, hence the narrow text tower)."""
    config = CLIPConfig(
        text_config=dict(hidden_size=text_width, intermediate_size=4 * text_width, num_hidden_layers=2,
                         num_attention_heads=2, vocab_size=49408, max_position_embeddings=77),
        vision_config=dict(hidden_size=vision_width, intermediate_size=4 * vision_width, num_hidden_layers=2,
                           num_attention_heads=2, image_size=224, patch_size=32),
        projection_dim=embed_dim)
    config._attn_implementation = 'eager'
    return config


def random_tiny_model(seed, logit_scale=None):
    common.seed_everything(seed)
    model = CLIPModel(tiny_config()).eval()
    # Random init leaves the projections so small that every cosine is ≈ 0; wider weights give scores that differ.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.5)
        if logit_scale is not None:
            model.logit_scale.fill_(math.log(logit_scale))
    return model


def load_model(model_path):
    """CLIPModel.from_pretrained with the eager attention torch.onnx traces; on torch < 2.1 (whose transformers loader
    calls torch 2 APIs) the same weights are read by hand from model.safetensors or pytorch_model.bin."""
    if not common.torch_older_than('2.1') or not os.path.isdir(model_path):
        return CLIPModel.from_pretrained(model_path, attn_implementation='eager').eval()
    config = CLIPConfig.from_pretrained(model_path)
    config._attn_implementation = 'eager'
    model = CLIPModel(config).eval()
    safetensors_file = os.path.join(model_path, 'model.safetensors')
    if os.path.exists(safetensors_file):
        from safetensors.torch import load_file

        state = load_file(safetensors_file)
    else:
        state = torch.load(os.path.join(model_path, 'pytorch_model.bin'), map_location='cpu')
    missing, unexpected = model.load_state_dict(state, strict=False)
    # position_ids are buffers some versions save and others do not.
    missing = [k for k in missing if not k.endswith('position_ids')]
    unexpected = [k for k in unexpected if not k.endswith('position_ids')]
    if missing or unexpected:
        raise SystemExit(f'{model_path}: weights do not fit CLIPModel (missing {missing[:5]}, unexpected {unexpected[:5]})')
    return model


def download(repo_id):
    """The checkpoint's configs, tokenizer files and one copy of its weights (safetensors if the repo has them)."""
    from huggingface_hub import list_repo_files, snapshot_download

    files = set(list_repo_files(repo_id))
    weights = 'model.safetensors' if 'model.safetensors' in files else 'pytorch_model.bin'
    if weights not in files:
        raise SystemExit(f'{repo_id}: neither model.safetensors nor pytorch_model.bin in the repository')
    return snapshot_download(repo_id, allow_patterns=['*.json', '*.txt', weights])


class TextTower(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)


class ImageTower(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model.get_image_features(pixel_values=pixel_values)


class FullClip(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, pixel_values):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values)
        return out.logits_per_image, out.logits_per_text, out.text_embeds, out.image_embeds


def export(model, out, kind, layout, name, version, tokenizer, score=None, file_prefix=None):
    """Writes the ONNX model(s) and `<name>.json` into out; returns the metric JSON path."""
    os.makedirs(out, exist_ok=True)
    prefix = file_prefix or name
    size = model.config.vision_config.image_size
    ids, mask = common.sample_text_inputs()
    pixels = common.sample_pixels(size=size)
    spec = {'name': name, 'kind': kind, 'version': version}
    if layout == 'full':
        common.export_onnx(FullClip(model), (ids, mask, pixels), os.path.join(out, f'{prefix}.onnx'),
                           ['input_ids', 'attention_mask', 'pixel_values'],
                           ['logits_per_image', 'logits_per_text', 'text_embeds', 'image_embeds'],
                           {'input_ids': {0: 'text_batch_size', 1: 'sequence_length'},
                            'attention_mask': {0: 'text_batch_size', 1: 'sequence_length'},
                            'pixel_values': {0: 'image_batch_size'},
                            'logits_per_image': {0: 'image_batch_size', 1: 'text_batch_size'},
                            'logits_per_text': {0: 'text_batch_size', 1: 'image_batch_size'},
                            'text_embeds': {0: 'text_batch_size'}, 'image_embeds': {0: 'image_batch_size'}})
        spec['clip_model'] = f'{prefix}.onnx'
    else:
        common.export_onnx(TextTower(model), (ids, mask), os.path.join(out, f'{prefix}-text.onnx'),
                           ['input_ids', 'attention_mask'], ['text_embeds'], common.TEXT_AXES)
        common.export_onnx(ImageTower(model), (pixels,), os.path.join(out, f'{prefix}-vision.onnx'),
                           ['pixel_values'], ['image_embeds'], common.IMAGE_AXES)
        spec['text_model'] = f'{prefix}-text.onnx'
        spec['vision_model'] = f'{prefix}-vision.onnx'
    spec['tokenizer'] = tokenizer
    spec['preprocess'] = 'hf-clip'
    if size != 224:
        spec['image_size'] = size
    if kind == 'pickscore':
        spec['logit_scale'] = float(model.logit_scale.exp().item())
    if score:
        spec['score'] = score
    return common.write_metric_json(out, f'{name}.json', spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument('--model', help='CLIPModel checkpoint: local folder or hub id')
    source.add_argument('--random-tiny', type=int, metavar='SEED', help='random small CLIPModel (tests)')
    ap.add_argument('--out', required=True, help='folder for the ONNX files and the metric JSON')
    ap.add_argument('--kind', choices=['pickscore', 'clip'], default='pickscore')
    ap.add_argument('--layout', choices=['full', 'split'], default='full')
    ap.add_argument('--name', help='metric name (default: the kind)')
    ap.add_argument('--version', help='version recorded with the scores (default: the checkpoint)')
    ap.add_argument('--score', choices=['cos', 'clip-100'], help='clip kind: cosine, or torchmetrics 100·max(cos, 0)')
    ap.add_argument('--tokenizer', help="tokenizer.json to copy (default: the checkpoint's; PickScore: laion CLIP-ViT-H-14's), "
                    'or keep:PATH to name it in place')
    args = ap.parse_args()
    name = args.name or args.kind
    if args.random_tiny is not None:
        model = random_tiny_model(args.random_tiny)
        version = args.version or f'random-tiny-clip-seed{args.random_tiny}'
        model_dir = None
    else:
        model_dir = args.model if os.path.isdir(args.model) else download(args.model)
        model = load_model(model_dir)
        version = args.version or os.path.basename(os.path.normpath(args.model))
    os.makedirs(args.out, exist_ok=True)
    tokenizer_source = args.tokenizer
    if tokenizer_source is None and model_dir and not os.path.exists(os.path.join(model_dir, 'tokenizer.json')):
        # PickScore_v1 is scored with the processor of the CLIP it was fine-tuned from.
        if args.kind == 'pickscore':
            from huggingface_hub import hf_hub_download

            tokenizer_source = hf_hub_download(PICKSCORE_PROCESSOR, 'tokenizer.json')
    tokenizer = common.place_tokenizer(tokenizer_source, args.out, model_dir)
    path = export(model, args.out, args.kind, args.layout, name, version, tokenizer, args.score)
    print(path)


if __name__ == '__main__':
    main()
