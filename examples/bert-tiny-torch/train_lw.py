"""A tiny BERT-like classifier and a synthetic, learnable task, for `layerwise train` on torch.

The contract Layerwise calls (plan field "pytorch": {"entry": "train_lw.py:build"}):
build() takes no argument and returns a dict
    {"model": nn.Module, "train": Dataset, "validation": Dataset or None, "loss": loss_fn}
where every dataset item is (inputs, target) and loss_fn(outputs, targets) returns the batch's
mean loss (a scalar tensor). The model's named_parameters() must be the names the plan's
"model" lists (parameters.json here, written by make_parameters.py from this very model).
Layerwise seeds torch (training.seed) before calling build(), so the initial weights are the
same on every rank. Nothing is downloaded: the data is generated from a fixed seed.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, HIDDEN, INTERMEDIATE, LAYERS, SEQ, CLASSES = 64, 32, 64, 2, 12, 2


class Embeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB, HIDDEN)
        self.position_embeddings = nn.Embedding(SEQ, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN)

    def forward(self, ids):
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(positions))


class SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN)

    def forward(self, x):
        scores = self.query(x) @ self.key(x).transpose(-1, -2) / math.sqrt(HIDDEN)
        return torch.softmax(scores, dim=-1) @ self.value(x)


class DenseNorm(nn.Module):
    def __init__(self, n_in):
        super().__init__()
        self.dense, self.LayerNorm = nn.Linear(n_in, HIDDEN), nn.LayerNorm(HIDDEN)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.self, self.output = SelfAttention(), DenseNorm(HIDDEN)

    def forward(self, x):
        return self.output(self.self(x), x)


class Intermediate(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(HIDDEN, INTERMEDIATE)

    def forward(self, x):
        return F.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention, self.intermediate, self.output = Attention(), Intermediate(), DenseNorm(INTERMEDIATE)

    def forward(self, x):
        a = self.attention(x)
        return self.output(self.intermediate(a), a)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.ModuleList([Layer() for _ in range(LAYERS)])

    def forward(self, x):
        for layer in self.layer:
            x = layer(x)
        return x


class Pooler(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, x):
        return torch.tanh(self.dense(x[:, 0]))


class TinyBert(nn.Module):
    """BERT's module names (embeddings, encoder.layer.N.attention.self.query, pooler, classifier)
    at toy sizes, with a two-layer classifier head."""

    def __init__(self):
        super().__init__()
        self.embeddings, self.encoder, self.pooler = Embeddings(), Encoder(), Pooler()
        self.classifier = nn.Sequential(nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))

    def forward(self, ids):
        return self.classifier(self.pooler(self.encoder(self.embeddings(ids))))


class TokenTask(torch.utils.data.Dataset):
    """Sequences of random tokens; the label says whether most tokens after the first are "low" (< 32).
    Learnable by attention, deterministic (a fixed generator), nothing to download."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, VOCAB, (n, SEQ), generator=g)
        self.ids[:, 0] = 1  # a [CLS]-like first token, which the pooler reads
        self.labels = ((self.ids[:, 1:] < VOCAB // 2).sum(1) > (SEQ - 1) // 2).long()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.ids[i], self.labels[i]


def build():
    return {
        "model": TinyBert(),
        "train": TokenTask(2048, seed=1),
        "validation": TokenTask(256, seed=2),
        "loss": nn.CrossEntropyLoss(),
    }
