"""What every exporter shares: loading transformers on an older torch, ONNX export of a tower with our input/output
names and dynamic batch axes, the CLIP BPE tokenizer files, and the metric JSON written beside the models.

The model contract (README "Metrics", src/models/towers.ts): a text tower takes `input_ids` (+ `attention_mask`)
int64 [batch, sequence] and outputs `text_embeds` [batch, d]; an image tower takes `pixel_values` float32
[batch, 3, S, S] and outputs `image_embeds` [batch, d]; a full CLIP export takes all three and outputs both plus
`logits_per_image`; the aesthetic head takes one [batch, d] input and outputs [batch, 1]. Embeddings need not be
normalised: `label` normalises them.
"""
import hashlib
import importlib.metadata as metadata
import inspect
import json
import os
import shutil
import sys
import types

import torch

# Opset 14 is what torch 1.13 exports best and every onnxruntime we run reads.
OPSET = 14
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def torch_older_than(version):
    from packaging.version import Version

    return Version(torch.__version__.split('+')[0]).release < Version(version).release


def import_transformers():
    """transformers, importable on Debian's torch 1.13 too.

    transformers >= 4.47 switches itself off below torch 2.1 and imports a few torch 2 names at import time, although
    CLIP's eager forward pass only needs torch 1.x operators. On such a torch this stubs exactly those import-time names
    (no numerics change: the stubs are never called on the CLIP path, and the tests compare its scores with the
    library's own forward pass) and pretends the versions transformers checks. On torch >= 2.1 it imports as is.
    """
    if 'transformers.models.clip' in sys.modules or not torch_older_than('2.1'):
        import transformers

        return transformers
    import torch.distributed
    import torch.utils._pytree as pytree

    real_version = metadata.version

    def claimed_version(name):
        if name == 'torch':
            return '2.1.0'
        if name in ('huggingface-hub', 'huggingface_hub'):
            # transformers 4.x pins hub < 1.0; the parts we use (local files) are the same in 1.x.
            found = real_version(name)
            return '0.99.0' if int(found.split('.')[0]) >= 1 else found
        if name == 'torchvision':
            # transformers' fast image processors need torchvision >= 0.15; the slow CLIPImageProcessor is the reference.
            raise metadata.PackageNotFoundError(name)
        return real_version(name)

    def disable(fn=None, recursive=True):
        return (lambda f: f) if fn is None else fn

    saved_dist = torch.distributed.is_available
    metadata.version = claimed_version
    torch.distributed.is_available = lambda: False
    try:
        if not hasattr(pytree, 'register_pytree_node'):
            pytree.register_pytree_node = lambda typ, flatten, unflatten, **_: pytree._register_pytree_node(
                typ, flatten, unflatten)
        if not hasattr(torch, 'compiler'):
            torch.compiler = types.SimpleNamespace(disable=disable, is_compiling=lambda: False)
        if not hasattr(torch, '_dynamo'):
            torch._dynamo = types.SimpleNamespace(allow_in_graph=lambda f: f, is_compiling=lambda: False, disable=disable)
        for name in ['float8_e4m3fn', 'float8_e5m2', 'float8_e4m3fnuz', 'float8_e5m2fnuz', 'float8_e8m0fnu', 'uint16',
                     'uint32', 'uint64']:
            if not hasattr(torch, name):
                # A distinct placeholder, never a real dtype: dtype tables keyed by it must not shadow float32's entry.
                setattr(torch, name, type(f'missing_{name}', (), {})())
        import transformers
        import transformers.models.clip.modeling_clip  # noqa: F401  (imported while the stubs are in place)
        import transformers.models.clip.image_processing_clip  # noqa: F401
    finally:
        metadata.version = real_version
        torch.distributed.is_available = saved_dist
    return transformers


# A protobuf message cannot exceed 2 GB: a ViT-H/14 tower (≈2.5 GB in float32) keeps its weights in one `.data` file
# beside the model, which ONNX Runtime reads from the model's folder.
EXTERNAL_DATA_OVER = 1_800_000_000
# torch >= 2.9 exports through dynamo by default, which reads dynamic_axes differently: keep the tracing exporter the
# fixtures were made with.
TORCHSCRIPT_EXPORTER = {'dynamo': False} if 'dynamo' in inspect.signature(torch.onnx.export).parameters else {}


def export_onnx(module, args, path, input_names, output_names, dynamic_axes, external_data_over=EXTERNAL_DATA_OVER):
    """torch.onnx.export of an eval-mode module into path (checked by onnx.checker before it is kept); returns path."""
    import tempfile

    import onnx

    module.eval()
    out_dir = os.path.dirname(os.path.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    # In a scratch folder beside the output: torch writes one file per tensor there when the model is over 2 GB.
    with tempfile.TemporaryDirectory(dir=out_dir, prefix='.export-') as scratch:
        traced = os.path.join(scratch, 'model.onnx')
        # Traced with gradients on: under no_grad, torch 1.13's nn.MultiheadAttention takes its fused fast path, an
        # operator torch.onnx cannot export.
        with torch.enable_grad():
            torch.onnx.export(module, args, traced, input_names=input_names, output_names=output_names,
                              dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True,
                              **TORCHSCRIPT_EXPORTER)
        model = onnx.load(traced)
        kept = os.path.join(scratch, os.path.basename(path))
        data = f'{os.path.basename(path)}.data'
        if model.ByteSize() > external_data_over:
            onnx.save_model(model, kept, save_as_external_data=True, all_tensors_to_one_file=True, location=data,
                            size_threshold=1024)
        else:
            onnx.save_model(model, kept)
        onnx.checker.check_model(kept)
        if os.path.exists(os.path.join(scratch, data)):
            os.replace(os.path.join(scratch, data), os.path.join(out_dir, data))
        os.replace(kept, path)
    return path


TEXT_AXES = {'input_ids': {0: 'batch_size', 1: 'sequence_length'}, 'attention_mask': {0: 'batch_size', 1: 'sequence_length'},
             'text_embeds': {0: 'batch_size'}}
IMAGE_AXES = {'pixel_values': {0: 'batch_size'}, 'image_embeds': {0: 'batch_size'}}


def sample_text_inputs(batch=2, length=77):
    ids = torch.zeros((batch, length), dtype=torch.long)
    ids[:, 0] = 49406
    ids[:, 1:4] = torch.tensor([320, 1125, 539])
    ids[:, 4] = 49407
    mask = torch.zeros_like(ids)
    mask[:, :5] = 1
    return ids, mask


def sample_pixels(batch=2, size=224):
    return torch.zeros((batch, 3, size, size), dtype=torch.float32)


def bpe_files_from_open_clip(out_dir):
    """vocab.json + merges.txt of open_clip's SimpleTokenizer (OpenAI CLIP's BPE), for our tokenizer to read."""
    import gzip

    import open_clip.tokenizer as oct

    with gzip.open(oct.default_bpe(), 'rt', encoding='utf-8') as f:
        lines = f.read().split('\n')
    # SimpleTokenizer's own construction: 48 894 merges after the header line, 256 bytes, their '</w>' forms, the merged
    # tokens, then the two special tokens.
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
    byte_chars = list(oct.bytes_to_unicode().values())
    vocab = byte_chars + [c + '</w>' for c in byte_chars] + [''.join(m) for m in merges] + ['<|startoftext|>',
                                                                                            '<|endoftext|>']
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, 'vocab.json'), 'w', encoding='utf-8') as f:
        json.dump({token: i for i, token in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(out_dir, 'merges.txt'), 'w', encoding='utf-8') as f:
        f.write('#version: 0.2\n' + ''.join(f'{a} {b}\n' for a, b in merges))
    return os.path.join(out_dir, 'vocab.json')


def place_tokenizer(tokenizer, out_dir, fallback_dir=None):
    """The tokenizer path a metric JSON names, relative to out_dir.

    `tokenizer` is a tokenizer.json or vocab.json (merges.txt beside it) to copy into out_dir, or `keep:PATH` to name
    PATH where it is (the fixtures reuse the repository's copy); None copies fallback_dir's tokenizer.json.
    """
    if tokenizer and tokenizer.startswith('keep:'):
        return os.path.relpath(tokenizer[len('keep:'):], out_dir)
    source = tokenizer
    if source is None and fallback_dir and os.path.exists(os.path.join(fallback_dir, 'tokenizer.json')):
        source = os.path.join(fallback_dir, 'tokenizer.json')
    if source is None:
        raise SystemExit('no tokenizer.json in the checkpoint: pass --tokenizer tokenizer.json (or vocab.json with merges.txt '
                         'beside it), e.g. the one of the CLIP the model was fine-tuned from')
    name = os.path.basename(source)
    if os.path.abspath(os.path.dirname(source)) != os.path.abspath(out_dir):
        shutil.copyfile(source, os.path.join(out_dir, name))
        if name == 'vocab.json':
            shutil.copyfile(os.path.join(os.path.dirname(source), 'merges.txt'), os.path.join(out_dir, 'merges.txt'))
    return name


def write_metric_json(out_dir, file_name, spec):
    """Writes the metric JSON beside the models (paths in it relative to out_dir); returns its path."""
    path = os.path.join(out_dir, file_name)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(spec, f, indent=2)
        f.write('\n')
    return path


def sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def versions():
    import numpy
    import onnx
    import PIL

    found = {'python': sys.version.split()[0], 'torch': torch.__version__, 'numpy': numpy.__version__, 'onnx': onnx.__version__,
             'pillow': PIL.__version__}
    for name in ['torchvision', 'transformers', 'open_clip_torch', 'tokenizers']:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def seed_everything(seed):
    import random

    import numpy

    random.seed(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)
