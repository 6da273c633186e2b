#!/usr/bin/env python3
"""HPS v2 / v2.1 (open_clip ViT-H-14 + the HPS state dict) → text + image towers in ONNX + an hps metric JSON.

    python3 scripts/export/export_hps.py --checkpoint HPS_v2.1_compressed.pt --version HPSv2.1 --out models/hps21
    python3 scripts/export/export_hps.py --checkpoint HPS_v2_compressed.pt --version HPSv2.0 --out models/hps20

The HPS checkpoint replaces every weight, so the ViT-H-14 is created without pretrained weights and the state dict is
loaded strictly (a training checkpoint's {'state_dict': …} and 'module.' prefixes are accepted). The score is
cos(text, image), as hpsv2's img_score computes it; the metric JSON names "pad_token_id": 0 (open_clip's tokenizer) and
the preprocessing "hpsv2" (HPSv2's val transform with torchvision >= 0.17's antialiasing), or "hpsv2-legacy" with
--legacy-preprocess (the scores the HPSv2 paper's torchvision < 0.17 gives). v2.0 and v2.1 scores are not comparable:
give them different --version. --random-tiny SEED exports a random small open_clip model instead (tests); with
--checkpoint as well, the tiny model's weights come from that file.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_open_clip as oc  # noqa: E402

HPS_ARCH = 'ViT-H-14'


def load_hps(checkpoint, arch=HPS_ARCH):
    # Read first: a wrong file is reported before minutes of initialising ViT-H-14's 986 M random weights.
    state = oc.read_state_dict(checkpoint)
    return oc.load_state_dict(oc.create_model(arch, None), state, checkpoint)


def export(model, out, name, version, tokenizer, legacy_preprocess=False):
    return oc.export(model, out, name, version, tokenizer, kind='hps',
                     preprocess='hpsv2-legacy' if legacy_preprocess else 'hpsv2')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--checkpoint', help='HPS_v2_compressed.pt / HPS_v2.1_compressed.pt')
    ap.add_argument('--random-tiny', type=int, metavar='SEED', help='random small open_clip model (tests)')
    ap.add_argument('--out', required=True)
    ap.add_argument('--name', default='hps')
    ap.add_argument('--version', help='e.g. HPSv2.1 (required for a real checkpoint)')
    ap.add_argument('--legacy-preprocess', action='store_true', help='name "hpsv2-legacy" (no antialiasing)')
    ap.add_argument('--tokenizer', help='tokenizer.json / vocab.json to copy, or keep:PATH to name it in place')
    args = ap.parse_args()
    if args.random_tiny is not None:
        model = oc.random_tiny_model(args.random_tiny)
        if args.checkpoint:
            oc.load_state_dict_file(model, args.checkpoint)
        version = args.version or f'random-tiny-hps-seed{args.random_tiny}'
    else:
        if not args.checkpoint or not args.version:
            ap.error('--checkpoint and --version are required (or --random-tiny)')
        model = load_hps(args.checkpoint)
        version = args.version
    os.makedirs(args.out, exist_ok=True)
    print(export(model, args.out, args.name, version, oc.tokenizer_for(args.tokenizer, args.out), args.legacy_preprocess))


if __name__ == '__main__':
    main()
