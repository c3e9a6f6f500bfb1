"""PyTorch side of bench/speed.ts: the same models, batches, loss and optimizer (AdamW), timed
on request so the two frameworks can take turns on the same cores.

Protocol (one JSON object per line on stdout):
  start-up  -> {"ready": true, "torch": ..., "blas": ..., "threads": n}
  stdin "MODEL STEPS"  -> {"model": MODEL, "steps": STEPS, "seconds": s}   (after one warm-up step)
  stdin "quit" or EOF  -> exits

Run by bench/speed.ts with /usr/bin/python3 (Debian's python3-torch). Which BLAS it uses is
decided by the dynamic loader: Debian's reference libblas by default, OpenBLAS when
LD_LIBRARY_PATH points at /usr/lib/x86_64-linux-gnu/openblas-pthread.
"""
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def blas_in_use():
    """The BLAS library the loader actually mapped into this process."""
    try:
        with open('/proc/self/maps') as f:
            libs = {line.split()[-1] for line in f if 'blas' in line.lower()}
    except OSError:
        return 'unknown'
    names = sorted(os.path.basename(p) for p in libs)
    if any('openblas' in p for p in libs):
        return 'OpenBLAS (' + ', '.join(names) + ')'
    return 'reference BLAS (' + ', '.join(names) + ')' if names else 'none mapped'


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.d1 = nn.Linear(784, 256)
        self.d2 = nn.Linear(256, 256)
        self.out = nn.Linear(256, 10)

    def forward(self, x):
        return self.out(F.relu(self.d2(F.relu(self.d1(x)))))


def conv_block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout, eps=1e-3),
                         nn.ReLU(), nn.MaxPool2d(2))


class Cnn(nn.Module):
    """2x [conv3x3 + BN + ReLU + maxpool 2], flatten, dense; channels (c1, c2)."""

    def __init__(self, c1, c2, hidden, classes):
        super().__init__()
        self.b1 = conv_block(1, c1)
        self.b2 = conv_block(c1, c2)
        layers = [nn.Flatten()]
        if hidden:
            layers += [nn.Linear(7 * 7 * c2, hidden), nn.ReLU(), nn.Linear(hidden, classes)]
        else:
            layers += [nn.Linear(7 * 7 * c2, classes)]
        self.head = nn.Sequential(*layers)

    def forward(self, x):
        return self.head(self.b2(self.b1(x)))


def bn_relu(c, relu6=True):
    return [nn.BatchNorm2d(c, eps=1e-3), nn.ReLU6() if relu6 else nn.ReLU()]


class Separable(nn.Module):
    """MobileNet-style: conv3x3/2 (32) -> dw3x3 -> pw 64 -> dw3x3/2 -> pw 128 -> GAP -> dense 10."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False), *bn_relu(32),
            nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False), *bn_relu(32),
            nn.Conv2d(32, 64, 1, bias=False), *bn_relu(64),
            # TF 'same' pads (0, 1) here, torch (1, 1): same output size and FLOPs
            nn.Conv2d(64, 64, 3, stride=2, padding=1, groups=64, bias=False), *bn_relu(64),
            nn.Conv2d(64, 128, 1, bias=False), *bn_relu(128),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))

    def forward(self, x):
        return self.body(x)


class TransformerBlock(nn.Module):
    """Post-LN encoder block: MHA (4 heads) + residual + LN, FFN 64-256-64 + residual + LN, mean over
    the sequence, dense 10. Attention written out as the tfjs side does it."""

    def __init__(self, dim=64, heads=4, ffn=256):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.ln1 = nn.LayerNorm(dim, eps=1e-3)
        self.f1 = nn.Linear(dim, ffn)
        self.f2 = nn.Linear(ffn, dim)
        self.ln2 = nn.LayerNorm(dim, eps=1e-3)
        self.out = nn.Linear(dim, 10)

    def forward(self, x):
        b, s, d = x.shape
        h = self.heads
        split = lambda t: t.view(b, s, h, d // h).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        att = torch.softmax(q @ k.transpose(-1, -2) / (d // h) ** 0.5, dim=-1)
        a = (att @ v).transpose(1, 2).reshape(b, s, d)
        x = self.ln1(x + self.o(a))
        x = self.ln2(x + self.f2(F.relu(self.f1(x))))
        return self.out(x.mean(dim=1))


class Encoder(nn.Module):
    """bench/speed.ts's encoder: 4 post-LN layers (hidden 256, 4 heads, FFN 1024 with GELU) over embedded
    tokens, mean over the sequence, dense 10; attention written out as the tfjs side does it."""

    def __init__(self, layers=4, dim=256, heads=4, ffn=1024):
        super().__init__()
        self.heads = heads
        self.blocks = nn.ModuleList(nn.ModuleDict({
            'q': nn.Linear(dim, dim), 'k': nn.Linear(dim, dim), 'v': nn.Linear(dim, dim), 'o': nn.Linear(dim, dim),
            'ln1': nn.LayerNorm(dim, eps=1e-3), 'f1': nn.Linear(dim, ffn), 'f2': nn.Linear(ffn, dim),
            'ln2': nn.LayerNorm(dim, eps=1e-3)}) for _ in range(layers))
        self.out = nn.Linear(dim, 10)

    def forward(self, x):
        b, s, d = x.shape
        h = self.heads
        split = lambda t: t.view(b, s, h, d // h).transpose(1, 2)
        for blk in self.blocks:
            q, k, v = split(blk['q'](x)), split(blk['k'](x)), split(blk['v'](x))
            att = torch.softmax(q @ k.transpose(-1, -2) / (d // h) ** 0.5, dim=-1)
            a = (att @ v).transpose(1, 2).reshape(b, s, d)
            x = blk['ln1'](x + blk['o'](a))
            x = blk['ln2'](x + blk['f2'](F.gelu(blk['f1'](x))))
        return self.out(x.mean(dim=1))


def mobilenet(top_only=False):
    """torchvision's MobileNetV2 (the Keras one's architecture), 10 classes; with top_only, only features[16:]
    (Keras block_15, block_16, Conv_1) and the classifier get gradients, and the frozen features[:16] run in
    eval mode (BatchNorm on its running statistics), as the engine runs frozen layers."""
    import torchvision  # Debian python3-torchvision; only these benches need it
    m = torchvision.models.mobilenet_v2(num_classes=10)
    if top_only:
        for p in m.parameters():
            p.requires_grad_(False)
        for part in (m.features[16:], m.classifier):
            for p in part.parameters():
                p.requires_grad_(True)
        m.frozen_below = 16  # a plain int: Bench puts features[:16] in eval mode after train()
    return m


# name -> (model factory, input shape per sample (channels first), batch, classes)
MODELS = {
    'mlp': (Mlp, (784,), 64, 10),
    'cnn': (lambda: Cnn(32, 64, 0, 10), (1, 28, 28), 64, 10),
    'separable': (Separable, (3, 64, 64), 32, 10),
    'transformer': (TransformerBlock, (32, 64), 32, 10),
    'example': (lambda: Cnn(8, 16, 32, 4), (1, 28, 28), 16, 4),
    'encoder': (Encoder, (128, 256), 16, 10),
    'mobilenet96': (mobilenet, (3, 96, 96), 16, 10),
    'mobilenet224': (mobilenet, (3, 224, 224), 16, 10),
    'mobilenet224-top': (lambda: mobilenet(top_only=True), (3, 224, 224), 16, 10),
}


class Bench:
    def __init__(self, name):
        factory, shape, batch, classes = MODELS[name]
        torch.manual_seed(0)
        self.model = factory()
        self.model.train()
        if hasattr(self.model, 'frozen_below'):
            self.model.features[:self.model.frozen_below].eval()
        self.opt = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=1e-4)
        self.batches = [(torch.randn(batch, *shape), torch.randint(0, classes, (batch,))) for _ in range(4)]
        self.i = 0
        self.step()

    def step(self):
        x, y = self.batches[self.i % len(self.batches)]
        self.i += 1
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        self.opt.step()
        return loss.item()


def main():
    threads = int(os.environ.get('TORCH_THREADS', '2'))
    torch.set_num_threads(threads)
    benches = {}
    print(json.dumps({'ready': True, 'torch': torch.__version__, 'blas': blas_in_use(),
                      'threads': torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == 'quit':
            break
        name, steps = parts[0], int(parts[1])
        if name not in benches:
            benches[name] = Bench(name)
        b = benches[name]
        t0 = time.perf_counter()
        for _ in range(steps):
            b.step()
        print(json.dumps({'model': name, 'steps': steps, 'seconds': time.perf_counter() - t0}), flush=True)


if __name__ == '__main__':
    main()
