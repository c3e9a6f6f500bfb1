#!/usr/bin/python3
"""PyTorch reference runs that Layerwise's optimizer, schedules and trainer must reproduce.

Run with Debian's torch 1.13:  /usr/bin/python3 scripts/torch-reference.py
Writes test/fixtures/torch-reference.json. Deterministic: the same file every run (weights and
data come from a seeded generator and are written into the file, so the TS tests never depend
on torch's RNG).

The schedule lambdas below are written from their published definitions (Hugging Face
transformers' get_*_schedule_with_warmup, the ULMFiT paper's slanted triangular LR), not from
Layerwise's TypeScript, so the comparison is independent. OneCycleLR is torch's own.
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'torch-reference.json')


def f32(values):
    """Float32 values as short decimals that round-trip exactly through Math.fround."""
    return [float('%.9g' % v) for v in values]


def flat_tfjs(param, is_kernel):
    """tfjs layout: a Dense kernel is torch's weight transposed ([in, out]), row-major."""
    t = param.detach().t() if is_kernel else param.detach()
    return f32(t.contiguous().reshape(-1).tolist())


def uniform(gen, shape, scale):
    return ((torch.rand(shape, generator=gen, dtype=torch.float32) * 2 - 1) * scale).to(torch.float32)


# ---------------------------------------------------------------- schedules (from their papers)

def hf_constant_with_warmup(W):
    return lambda t: t / max(1.0, W) if t < W else 1.0


def hf_linear_with_warmup(W, T):
    def f(t):
        if t < W:
            return float(t) / float(max(1, W))
        return max(0.0, float(T - t) / float(max(1, T - W)))
    return f


def hf_cosine_with_warmup(W, T, num_cycles=0.5):
    def f(t):
        if t < W:
            return float(t) / float(max(1, W))
        progress = float(t - W) / float(max(1, T - W))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))
    return f


def ulmfit_stlr(T, cut_frac, ratio):
    # Howard & Ruder 2018, eq. (3); only used where T·cut_frac is whole, where it is exact.
    cut = math.floor(T * cut_frac)
    def f(t):
        p = t / cut if t < cut else 1 - (t - cut) / (cut * (1 / cut_frac - 1))
        return (1 + p * (ratio - 1)) / ratio
    return f


# ---------------------------------------------------------------- case A: optimizer level

A_PARAMS = ['dense_1/kernel', 'dense_1/bias', 'dense_2/kernel', 'dense_2/bias']


class TinyMlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.dense_1 = torch.nn.Linear(4, 3)
        self.dense_2 = torch.nn.Linear(3, 2)

    def forward(self, x):
        return self.dense_2(torch.tanh(self.dense_1(x)))

    def by_name(self):
        return {
            'dense_1/kernel': self.dense_1.weight, 'dense_1/bias': self.dense_1.bias,
            'dense_2/kernel': self.dense_2.weight, 'dense_2/bias': self.dense_2.bias,
        }


gen_a = torch.Generator().manual_seed(20240611)
A_INIT = {
    'dense_1/kernel': uniform(gen_a, (3, 4), 0.5),  # torch layout [out, in]
    'dense_1/bias': uniform(gen_a, (3,), 0.1),
    'dense_2/kernel': uniform(gen_a, (2, 3), 0.5),
    'dense_2/bias': uniform(gen_a, (2,), 0.1),
}
A_X = uniform(gen_a, (8, 4), 1.0)
A_Y = uniform(gen_a, (8, 2), 1.0)


def fresh_a_model():
    model = TinyMlp()
    with torch.no_grad():
        for name, p in model.by_name().items():
            p.copy_(A_INIT[name])
    return model


def make_optimizer(opt, groups):
    torch_groups = [
        {'params': g['torch_params'], 'lr': g['lr'], 'weight_decay': g['weightDecay']} for g in groups
    ]
    if opt['type'] == 'adamw':
        return torch.optim.AdamW(torch_groups, betas=tuple(opt['betas']), eps=opt['eps'], foreach=False)
    if opt['type'] == 'adam':
        return torch.optim.Adam(torch_groups, betas=tuple(opt['betas']), eps=opt['eps'], foreach=False)
    if opt['type'] == 'sgd':
        return torch.optim.SGD(torch_groups, lr=groups[0]['lr'], momentum=opt['momentum'],
                               dampening=0, nesterov=opt['nesterov'], foreach=False)
    raise ValueError(opt['type'])


def optimizer_settings(type_, betas=(0.9, 0.999), eps=1e-8, momentum=0.0, nesterov=False):
    return {'type': type_, 'betas': list(betas), 'eps': eps, 'momentum': momentum, 'nesterov': nesterov}


def run_case_a(name, description, opt, groups, steps, frozen=(), schedule=None):
    """groups: [{name, params, lr, weightDecay, joinsAtStep}]; schedule: {spec, T, kind}."""
    model = fresh_a_model()
    by_name = model.by_name()
    for pname in frozen:
        by_name[pname].requires_grad_(False)
    late = [g for g in groups if g['joinsAtStep'] > 0]
    for g in late:
        for pname in g['params']:
            by_name[pname].requires_grad_(False)
    start = [g for g in groups if g['joinsAtStep'] == 0]
    for g in groups:
        g['torch_params'] = [by_name[p] for p in g['params']]
    optimizer = make_optimizer(opt, start)

    scheduler = None
    if schedule is not None:
        spec, T = schedule['spec'], schedule['T']
        kind = spec['type']
        if kind == 'onecycle':
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=[g['lr'] for g in start], total_steps=T,
                pct_start=float(spec.get('pctStart', 0.25)), anneal_strategy='cos',
                cycle_momentum=False, div_factor=float(spec.get('divFactor', 25.0)),
                final_div_factor=float(spec.get('finalDivFactor', 1e4)), three_phase=False)
        else:
            warmup = spec.get('warmup', 0)
            W = math.ceil(warmup * T) if warmup < 1 else int(warmup)
            if kind == 'constant':
                fn = hf_constant_with_warmup(W)
            elif kind == 'linear':
                fn = hf_linear_with_warmup(W, T)
            elif kind == 'cosine':
                fn = hf_cosine_with_warmup(W, T)
            elif kind == 'stlr':
                fn = ulmfit_stlr(T, spec.get('cutFrac', 0.1), spec.get('ratio', 32))
            else:
                raise ValueError(kind)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, fn)

    group_index = {}  # layerwise group name -> torch param_groups index
    for i, g in enumerate(start):
        group_index[g['name']] = i

    lrs, trajectory, losses = [], [], []
    for t in range(steps):
        for g in late:
            if g['joinsAtStep'] == t:
                for p in g['torch_params']:
                    p.requires_grad_(True)
                # A new group starts with no state; the groups already training keep theirs.
                optimizer.add_param_group({'params': g['torch_params'], 'lr': g['lr'],
                                           'weight_decay': g['weightDecay']})
                group_index[g['name']] = len(optimizer.param_groups) - 1
        lrs.append([optimizer.param_groups[group_index[g['name']]]['lr'] if g['name'] in group_index else 0.0
                    for g in groups])
        optimizer.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(A_X), A_Y)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(float('%.9g' % loss.item()))
        trajectory.append(sum((flat_tfjs(by_name[p], p.endswith('kernel')) for p in A_PARAMS), []))

    out = {
        'name': name,
        'description': description,
        'optimizer': opt,
        'steps': steps,
        'groups': [{k: g[k] for k in ('name', 'params', 'lr', 'weightDecay', 'joinsAtStep')} for g in groups],
        'frozen': list(frozen),
        'lrs': lrs,
        'losses': losses,
        'trajectory': trajectory,
    }
    if schedule is not None:
        out['schedule'] = {'spec': schedule['spec'], 'T': schedule['T']}
    return out


def group(name, params, lr, wd, joins=0):
    return {'name': name, 'params': params, 'lr': lr, 'weightDecay': wd, 'joinsAtStep': joins}


def case_a():
    adamw = optimizer_settings('adamw')
    two_groups = lambda: [
        group('base', ['dense_1/kernel', 'dense_1/bias'], 1e-2, 0.01),
        group('head', ['dense_2/kernel', 'dense_2/bias'], 4e-2, 0.0),
    ]
    configs = [
        run_case_a('adamw_groups', 'AdamW, three groups with different lr and weight decay; the biases '
                   'share a no-decay group. Constant lr.', adamw, [
                       group('base', ['dense_1/kernel'], 1e-2, 0.05),
                       group('head', ['dense_2/kernel'], 3e-2, 0.01),
                       group('noDecay', ['dense_1/bias', 'dense_2/bias'], 2e-2, 0.0),
                   ], 25),
        run_case_a('adam_l2', 'Adam (L2 weight decay added to the gradient), kernels decayed, biases not.',
                   optimizer_settings('adam', betas=(0.85, 0.99), eps=1e-7), [
                       group('kernels', ['dense_1/kernel', 'dense_2/kernel'], 1e-2, 0.02),
                       group('biases', ['dense_1/bias', 'dense_2/bias'], 2e-2, 0.0),
                   ], 25),
        run_case_a('sgd_momentum', 'SGD with momentum 0.9, dampening 0, L2 weight decay on kernels.',
                   optimizer_settings('sgd', momentum=0.9), [
                       group('kernels', ['dense_1/kernel', 'dense_2/kernel'], 5e-2, 1e-3),
                       group('biases', ['dense_1/bias', 'dense_2/bias'], 1e-1, 0.0),
                   ], 25),
        run_case_a('sgd_nesterov', 'SGD with Nesterov momentum 0.8 and L2 weight decay.',
                   optimizer_settings('sgd', momentum=0.8, nesterov=True), [
                       group('all', list(A_PARAMS), 5e-2, 1e-3),
                   ], 25),
        run_case_a('sgd_plain', 'Plain SGD: no momentum, no weight decay, two groups.',
                   optimizer_settings('sgd'), [
                       group('base', ['dense_1/kernel', 'dense_1/bias'], 5e-2, 0.0),
                       group('head', ['dense_2/kernel', 'dense_2/bias'], 2e-1, 0.0),
                   ], 25),
        run_case_a('adamw_frozen', 'AdamW with dense_1/kernel frozen (requires_grad False, not in the '
                   'optimizer): it must stay bit-identical while the rest trains.', adamw, [
                       group('rest', ['dense_1/bias', 'dense_2/kernel', 'dense_2/bias'], 2e-2, 0.01),
                   ], 25, frozen=['dense_1/kernel']),
        run_case_a('adamw_unfreeze_at_10', 'AdamW; dense_1 is frozen for steps 0-9 and joins at step 10 '
                   'through optimizer.add_param_group with fresh state, while dense_2 keeps its moments '
                   'and step count.', adamw, [
                       group('head', ['dense_2/kernel', 'dense_2/bias'], 3e-2, 0.01),
                       group('base', ['dense_1/kernel', 'dense_1/bias'], 1e-2, 0.01, joins=10),
                   ], 25),
    ]
    schedules = [
        ('schedule_constant_warmup', {'type': 'constant', 'warmup': 4}, 20,
         'LambdaLR with HF get_constant_schedule_with_warmup, 4 warm-up steps.'),
        ('schedule_linear', {'type': 'linear', 'warmup': 0.1}, 24,
         'LambdaLR with HF get_linear_schedule_with_warmup, warm-up 0.1 of 24 steps = ceil(2.4) = 3.'),
        ('schedule_cosine', {'type': 'cosine', 'warmup': 5}, 24,
         'LambdaLR with HF get_cosine_schedule_with_warmup (num_cycles 0.5), 5 warm-up steps.'),
        ('schedule_stlr_default', {'type': 'stlr'}, 20,
         'LambdaLR with the ULMFiT slanted triangular formula, cut_frac 0.1, ratio 32 (cut = 2).'),
        ('schedule_stlr_custom', {'type': 'stlr', 'cutFrac': 0.2, 'ratio': 16}, 30,
         'LambdaLR with the ULMFiT slanted triangular formula, cut_frac 0.2, ratio 16 (cut = 6).'),
        ('schedule_onecycle', {'type': 'onecycle', 'pctStart': 0.25}, 30,
         'torch OneCycleLR, cos, two phases, cycle_momentum False, pct_start 0.25 (phase end at step '
         '6.5), div 25, final div 1e4, max_lr per group.'),
        ('schedule_onecycle_custom', {'type': 'onecycle', 'pctStart': 0.3, 'divFactor': 10.0,
                                      'finalDivFactor': 100.0}, 20,
         'torch OneCycleLR, pct_start 0.3, div 10, final div 100, max_lr per group.'),
    ]
    for name, spec, T, desc in schedules:
        configs.append(run_case_a(name, 'AdamW, groups base (lr 1e-2, wd 0.01) and head (lr 4e-2, wd 0); '
                                  + desc + ' The group lr is the peak (max_lr).', adamw, two_groups(), T,
                                  schedule={'spec': spec, 'T': T}))
    return {
        'notes': (
            'Optimizer-level reference. Model: dense_1 = Linear(4->3), tanh, dense_2 = Linear(3->2); '
            'loss = mean squared error over all outputs of the whole batch (x: 8x4, y: 8x2), one full-batch '
            'step per optimizer step, float32, torch ' + torch.__version__ + ' single-tensor (foreach=False) '
            'optimizers. Weights are in tfjs layout (kernel [in, out] = torch weight transposed) and '
            'flattened row-major; `trajectory[t]` concatenates the params in `paramOrder` after step t. '
            '`lrs[t][g]` is group g\'s lr used by step t (0 before a group joins). Frozen params are not '
            'in any group and get no gradient. A group with joinsAtStep > 0 is frozen until then.'),
        'paramOrder': A_PARAMS,
        'shapes': {'dense_1/kernel': [4, 3], 'dense_1/bias': [3], 'dense_2/kernel': [3, 2], 'dense_2/bias': [2]},
        'initial': {n: flat_tfjs(A_INIT[n], n.endswith('kernel')) for n in A_PARAMS},
        'x': f32(A_X.reshape(-1).tolist()),
        'xShape': [8, 4],
        'y': f32(A_Y.reshape(-1).tolist()),
        'yShape': [8, 2],
        'configs': configs,
    }


# ---------------------------------------------------------------- case B: trainer level

B_PARAMS = ['dense_1/kernel', 'dense_1/bias', 'dense_2/kernel', 'dense_2/bias']


def case_b():
    gen = torch.Generator().manual_seed(7)
    w1, b1 = uniform(gen, (5, 6), 0.6), uniform(gen, (5,), 0.1)
    w2, b2 = uniform(gen, (3, 5), 0.6), uniform(gen, (3,), 0.1)
    x = uniform(gen, (12, 6), 1.0)
    labels = torch.randint(0, 3, (12,), generator=gen)

    l1, l2 = torch.nn.Linear(6, 5), torch.nn.Linear(5, 3)
    with torch.no_grad():
        l1.weight.copy_(w1); l1.bias.copy_(b1); l2.weight.copy_(w2); l2.bias.copy_(b2)
    by_name = {'dense_1/kernel': l1.weight, 'dense_1/bias': l1.bias,
               'dense_2/kernel': l2.weight, 'dense_2/bias': l2.bias}
    initial = {n: flat_tfjs(by_name[n], n.endswith('kernel')) for n in B_PARAMS}

    base_lr, epochs, batch_size, warmup = 1e-2, 2, 4, 0.3
    steps_per_epoch = math.ceil(12 / batch_size)
    T = epochs * steps_per_epoch
    W = math.ceil(warmup * T)
    groups = [
        {'name': 'dense_1', 'lrMult': 0.1, 'params': {'dense_1/kernel': 0.01, 'dense_1/bias': 0.0}},
        {'name': 'dense_2', 'lrMult': 1.0, 'params': {'dense_2/kernel': 0.01, 'dense_2/bias': 0.0}},
    ]
    torch_groups = []
    for g in groups:
        for pname, wd in g['params'].items():
            torch_groups.append({'params': [by_name[pname]], 'lr': base_lr * g['lrMult'], 'weight_decay': wd})
    optimizer = torch.optim.AdamW(torch_groups, betas=(0.9, 0.999), eps=1e-8, foreach=False)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, hf_cosine_with_warmup(W, T))

    trajectory, losses, lrs = [], [], []
    for _epoch in range(epochs):
        for start in range(0, 12, batch_size):
            xb, yb = x[start:start + batch_size], labels[start:start + batch_size]
            lrs.append([pg['lr'] for pg in optimizer.param_groups])
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(l2(torch.relu(l1(xb))), yb)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float('%.9g' % loss.item()))
            trajectory.append(sum((flat_tfjs(by_name[p], p.endswith('kernel')) for p in B_PARAMS), []))

    return {
        'notes': (
            'Trainer-level reference. A tfjs Sequential equivalent: Dense(6->5, relu) named dense_1, '
            'Dense(5->3, linear) named dense_2; classification with categorical cross-entropy from '
            'logits, mean over the batch. x: 12x6, integer labels in 0..2 (3 classes). batchSize 4, no '
            'shuffling (file order), 3 steps per epoch, 2 epochs = 6 steps. AdamW betas [0.9, 0.999], '
            'eps 1e-8; training.lr 1e-2; group dense_1 lrMult 0.1, dense_2 lrMult 1; weight decay 0.01 '
            'on kernels and 0 on biases (the default noDecay rule). Schedule: cosine with warmup 0.3 of '
            'T = 6 steps, W = ceil(1.8) = 2 (HF cosine-with-warmup via LambdaLR). `plan` is the '
            'equivalent Layerwise plan fragment. `lrs[t]` lists the lr of [dense_1/kernel, '
            'dense_1/bias, dense_2/kernel, dense_2/bias] used by step t; `trajectory[t]` the params '
            'in `paramOrder` (tfjs layout, row-major) after step t; `losses[t]` the batch loss of step t '
            'before its update.'),
        'plan': {
            'task': 'classification',
            'training': {'epochs': epochs, 'batchSize': batch_size, 'lr': base_lr, 'optimizer': 'adamw',
                         'betas': [0.9, 0.999], 'eps': 1e-8, 'weightDecay': 0.01,
                         'schedule': {'type': 'cosine', 'warmup': warmup}},
            'data': {'shuffle': False},
            'groups': [{'name': 'dense_1', 'layers': ['dense_1'], 'lrMult': 0.1},
                       {'name': 'dense_2', 'layers': ['dense_2'], 'lrMult': 1.0}],
        },
        'paramOrder': B_PARAMS,
        'shapes': {'dense_1/kernel': [6, 5], 'dense_1/bias': [5], 'dense_2/kernel': [5, 3], 'dense_2/bias': [3]},
        'initial': initial,
        'x': f32(x.reshape(-1).tolist()),
        'xShape': [12, 6],
        'labels': labels.tolist(),
        'classes': 3,
        'stepsPerEpoch': steps_per_epoch,
        'steps': T,
        'lrs': lrs,
        'losses': losses,
        'trajectory': trajectory,
    }


def main():
    fixture = {
        'generatedBy': 'scripts/torch-reference.py (run with /usr/bin/python3)',
        'torch': torch.__version__,
        'notes': (
            'PyTorch reference for Layerwise. caseA: optimizer-level runs (AdamW/Adam/SGD, groups, '
            'frozen params, a group joining mid-run, every schedule) on a 4-3-2 tanh MLP with MSE. '
            'caseB: a trainer-level run (6-5-3 relu MLP, cross-entropy from logits, mini-batches, '
            'discriminative AdamW groups, cosine with warm-up). Float values are float32 written with '
            '9 significant digits (exact after Math.fround); lrs are float64.'),
        'caseA': case_a(),
        'caseB': case_b(),
    }
    text = json.dumps(fixture, separators=(',', ':'))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w') as f:
        f.write(text + '\n')
    print('wrote %s (%d bytes)' % (os.path.relpath(OUT), len(text) + 1), file=sys.stderr)


if __name__ == '__main__':
    main()
