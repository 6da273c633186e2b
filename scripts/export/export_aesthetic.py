#!/usr/bin/env python3
"""LAION improved aesthetic predictor (the MLP over CLIP ViT-L/14's normalised image embedding) → ONNX + metric JSON.

    python3 scripts/export/export_aesthetic.py --head sac+logos+ava1-l14-linearMSE.pth --out models/aesthetic

Writes the ViT-L/14 image tower (OpenAI weights through open_clip, QuickGELU, as clip.load gives them; or
--vision-model to name an existing export, e.g. the CLIP-score metric's, so both metrics share one forward pass) and
the MLP as head_model: input `embedding` [batch, 768], output `score` [batch, 1]. `label` L2-normalises the embedding
first, as the predictor's own code does. The metric JSON names the preprocessing "openai-clip" (clip.load's transform).
--random-tiny SEED: a random small open_clip tower and an MLP of the same layout on its width (tests).
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import export_open_clip as oc  # noqa: E402


class AestheticMLP(torch.nn.Module):
    """improved-aesthetic-predictor's MLP, layer for layer, so its state dict (layers.0 … layers.7) loads as is."""

    def __init__(self, input_size=768):
        super().__init__()
        self.input_size = input_size
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(input_size, 1024),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(1024, 128),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(128, 64),
            torch.nn.Dropout(0.1),
            torch.nn.Linear(64, 16),
            torch.nn.Linear(16, 1),
        )

    def forward(self, x):
        return self.layers(x)


def load_head(path, input_size=768):
    head = AestheticMLP(input_size)
    try:
        head.load_state_dict(torch.load(path, map_location='cpu'), strict=True)
    except Exception as error:  # noqa: BLE001  (unpickling raises anything; all of it means "not this MLP")
        raise SystemExit(f'{path}: not an improved-aesthetic-predictor MLP state dict ({str(error)[:600]})') from None
    return head.eval()


def random_tiny_head(seed, input_size):
    """The real layout on a tiny embedding width; weights drawn so that scores spread around 5 as the real ones do
    (PyTorch's default init would give every image ≈ the same score)."""
    common.seed_everything(seed)
    head = AestheticMLP(input_size).eval()
    linears = [m for m in head.layers if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for i, layer in enumerate(linears):
            # The input is a unit vector: the first layer keeps its length, the others keep the variance.
            layer.weight.normal_(0, 4.0 if i == 0 else layer.in_features ** -0.5)
            layer.bias.normal_(0, 0.1)
        linears[-1].bias.fill_(5.0)
    return head


def export(vision, head, out, name, version, vision_model=None):
    """vision: an open_clip model whose image tower is exported (or None with vision_model, a path relative to out)."""
    os.makedirs(out, exist_ok=True)
    if vision_model is None:
        oc.export_image_tower(vision, os.path.join(out, f'{name}-vision.onnx'))
        vision_model = f'{name}-vision.onnx'
    common.export_onnx(head, (torch.zeros((2, head.input_size)),), os.path.join(out, f'{name}-mlp.onnx'), ['embedding'],
                       ['score'], {'embedding': {0: 'batch_size'}, 'score': {0: 'batch_size'}})
    spec = {'name': name, 'kind': 'aesthetic', 'version': version, 'vision_model': vision_model,
            'head_model': f'{name}-mlp.onnx', 'preprocess': 'openai-clip'}
    if vision is not None and oc.image_size(vision) != 224:
        spec['image_size'] = oc.image_size(vision)
    return common.write_metric_json(out, f'{name}.json', spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--head', help='the MLP state dict, e.g. sac+logos+ava1-l14-linearMSE.pth')
    ap.add_argument('--random-tiny', type=int, metavar='SEED', help='random small tower and MLP (tests)')
    ap.add_argument('--clip-model', default='ViT-L-14', help='open_clip model of the embedding (default ViT-L-14)')
    ap.add_argument('--clip-pretrained', default='openai', help='its weights (default openai)')
    ap.add_argument('--vision-model', help='an existing image tower export to name instead of writing one')
    ap.add_argument('--out', required=True)
    ap.add_argument('--name', default='aesthetic')
    ap.add_argument('--version', help='version recorded with the scores (default: the head file name)')
    args = ap.parse_args()
    if args.vision_model and not os.path.isfile(args.vision_model):
        ap.error(f'--vision-model {args.vision_model}: no such file')
    vision_model = os.path.relpath(args.vision_model, args.out) if args.vision_model else None
    if args.random_tiny is not None:
        vision = oc.random_tiny_model(args.random_tiny)
        head = random_tiny_head(args.random_tiny + 1, vision.text_projection.shape[1])
        version = args.version or f'random-tiny-aesthetic-seed{args.random_tiny}'
    else:
        if not args.head:
            ap.error('--head is required (or --random-tiny)')
        vision = None if vision_model else oc.create_model(args.clip_model, args.clip_pretrained)
        head = load_head(args.head)
        version = args.version or os.path.splitext(os.path.basename(args.head))[0]
    print(export(vision, head, args.out, args.name, version, vision_model))


if __name__ == '__main__':
    main()
