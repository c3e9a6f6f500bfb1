#!/usr/bin/python3
"""Runs code that `layerwise export` generated and reports what it did, as JSON on stdout.

Driven by test/engine/export-torch.test.ts, which compares the report with what Layerwise itself
computes (`layerwise inspect --json`, the engine's schedule and trainer, the torch reference
fixture). Nothing here knows the expected values: it only executes and measures.

    /usr/bin/python3 test/python/export_driver.py <command> <json arguments>
"""
import importlib.util
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))


def load_module(path, name="exported_plan"):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- a model with BERT's parameter names, at toy sizes -----------------------------------------

class SelfAttention(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)

    def forward(self, x):
        q, k, v = self.query(x), self.key(x), self.value(x)
        return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(x.shape[-1]), dim=-1) @ v


class AttentionOutput(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.dense, self.LayerNorm = nn.Linear(h, h), nn.LayerNorm(h)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.self, self.output = SelfAttention(h), AttentionOutput(h)

    def forward(self, x):
        return self.output(self.self(x), x)


class Intermediate(nn.Module):
    def __init__(self, h, i):
        super().__init__()
        self.dense = nn.Linear(h, i)

    def forward(self, x):
        return F.gelu(self.dense(x))


class Output(nn.Module):
    def __init__(self, h, i):
        super().__init__()
        self.dense, self.LayerNorm = nn.Linear(i, h), nn.LayerNorm(h)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class Layer(nn.Module):
    def __init__(self, h, i):
        super().__init__()
        self.attention, self.intermediate, self.output = Attention(h), Intermediate(h, i), Output(h, i)

    def forward(self, x):
        a = self.attention(x)
        return self.output(self.intermediate(a), a)


class Encoder(nn.Module):
    def __init__(self, n, h, i):
        super().__init__()
        self.layer = nn.ModuleList([Layer(h, i) for _ in range(n)])

    def forward(self, x):
        for layer in self.layer:
            x = layer(x)
        return x


class Embeddings(nn.Module):
    def __init__(self, vocab, positions, h):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, h)
        self.position_embeddings = nn.Embedding(positions, h)
        self.token_type_embeddings = nn.Embedding(2, h)
        self.LayerNorm = nn.LayerNorm(h)

    def forward(self, ids):
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        x = self.word_embeddings(ids) + self.position_embeddings(pos) + self.token_type_embeddings(torch.zeros_like(ids))
        return self.LayerNorm(x)


class Pooler(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.dense = nn.Linear(h, h)

    def forward(self, x):
        return torch.tanh(self.dense(x[:, 0]))


class Classifier(nn.Module):
    """The seed's head (fc1 -> ReLU -> fc2), with an optional BatchNorm to test frozen statistics."""

    def __init__(self, h, hidden, classes, batchnorm):
        super().__init__()
        self.fc1 = nn.Linear(h, hidden)
        self.bn = nn.BatchNorm1d(hidden) if batchnorm else None
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):
        x = self.fc1(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.fc2(torch.relu(x))


class BertLike(nn.Module):
    def __init__(self, layers=12, hidden=8, intermediate=12, vocab=24, positions=8, classes=2, head_hidden=6, batchnorm=False):
        super().__init__()
        self.embeddings = Embeddings(vocab, positions, hidden)
        self.encoder = Encoder(layers, hidden, intermediate)
        self.pooler = Pooler(hidden)
        self.classifier = Classifier(hidden, head_hidden, classes, batchnorm)

    def forward(self, ids):
        return self.classifier(self.pooler(self.encoder(self.embeddings(ids))))


def bertlike(opts):
    torch.manual_seed(opts.get("seed", 0))
    return BertLike(**opts.get("model", {}))


# ---- commands ----------------------------------------------------------------------------------

def cmd_names(args):
    """named_parameters() names and shapes: the plan-only model file Layerwise reads."""
    model = bertlike(args)
    return [{"name": n, "shape": list(p.shape)} for n, p in model.named_parameters()]


def cmd_groups(args):
    """What the generated param_settings / param_groups give every parameter."""
    mod = load_module(args["module"])
    model = bertlike(args)
    settings = {s["name"]: s for s in mod.param_settings(model)}
    out = {"settings": [], "stages": []}
    for name, s in settings.items():
        out["settings"].append({"name": name, "group": s["group"], "lr": s["lr"], "weightDecay": s["weight_decay"],
                                "frozen": s["frozen"], "weightDecayRule": s["weight_decay_rule"]})
    for k in range(len(mod.STAGES)):
        groups = mod.param_groups(model, k)
        where = {}
        for g in groups:
            for p in g["params"]:
                where[id(p)] = g
        rows = []
        for name, p in model.named_parameters():
            g = where.get(id(p))
            rows.append({"name": name, "inOptimizer": g is not None, "requiresGrad": p.requires_grad,
                         "lr": g["lr"] if g else None, "weightDecay": g["weight_decay"] if g else None})
        out["stages"].append(rows)
    return out


def cmd_schedule(args):
    """schedule_factor(t, T) of each module, for every T asked and t from 0 to T + 2."""
    out = []
    for i, path in enumerate(args["modules"]):
        mod = load_module(path, "exported_plan_%d" % i)
        out.append({str(T): [mod.schedule_factor(t, T) for t in range(T + 3)] for T in args["T"]})
    return out


def run_training(mod, model, batches, epochs, loss_fn, record, naive=False):
    """The loop the export's docstring shows: apply_stage at each stage's first epoch, PlanSchedule
    per step. naive=True uses a LambdaLR with the same factor instead, built before later stages
    add their groups: the failure PlanSchedule exists to avoid (torch #79888)."""
    optimizer = mod.make_optimizer(model)
    if naive:
        spe = len(batches)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda t: mod.scheduled_lr(t, 1.0, spe) / mod.STAGES[mod.stage_at(t, spe)[0]]["lr"])
    else:
        scheduler = mod.PlanSchedule(optimizer, steps_per_epoch=len(batches))
    step = 0
    for epoch in range(epochs):
        k = mod.stage_of_epoch(epoch)
        if k != optimizer.layerwise_stage:
            record("before_stage", step, optimizer, k)
            mod.apply_stage(model, optimizer, k)
            record("after_stage", step, optimizer, k)
        model.train()
        for inputs, targets in batches:
            record("step", step, optimizer, k)
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
    return optimizer


def cmd_lrs(args):
    """Every parameter's lr at every optimizer step, and what apply_stage did to the optimizer state."""
    mod = load_module(args["module"])
    model = bertlike(args)
    names = {id(p): n for n, p in model.named_parameters()}
    gen = torch.Generator().manual_seed(1)
    seq = args.get("seq", 4)
    vocab = args.get("model", {}).get("vocab", 24)
    batches = [(torch.randint(0, vocab, (2, seq), generator=gen), torch.randint(0, 2, (2,), generator=gen))
               for _ in range(args["stepsPerEpoch"])]
    steps, transitions = [], []
    bn = model.classifier.bn

    def snapshot(optimizer):
        state = {}
        for g in optimizer.param_groups:
            for p in g["params"]:
                s = optimizer.state.get(p)
                if s:
                    state[names[id(p)]] = {"step": float(s["step"]), "expAvgSum": float(s["exp_avg"].double().abs().sum())}
        return state

    def record(kind, step, optimizer, k):
        if kind == "step":
            lrs = {}
            for g in optimizer.param_groups:
                for p in g["params"]:
                    lrs[names[id(p)]] = g["lr"]
            steps.append({"step": step, "stage": k, "lrs": lrs,
                          "requiresGrad": {n: p.requires_grad for n, p in model.named_parameters()},
                          "bnTraining": bn.training if bn is not None else None,
                          "bnMean": [float(x) for x in bn.running_mean] if bn is not None else None})
        else:
            transitions.append({"kind": kind, "step": step, "stage": k, "state": snapshot(optimizer),
                                "groups": len(optimizer.param_groups)})

    run_training(mod, model, batches, mod.TOTAL_EPOCHS, F.cross_entropy, record, naive=args.get("naive", False))
    return {"steps": steps, "transitions": transitions}


def cmd_mlp(args):
    """Case B of the torch reference: Dense(6->5, relu) -> Dense(5->3) as modules dense_1, dense_2,
    trained by the generated optimizer and schedule; losses and weights (tfjs layout) per step."""
    mod = load_module(args["module"])
    c = args["case"]
    model = nn.Sequential()
    model.add_module("dense_1", nn.Linear(6, 5))
    model.add_module("relu", nn.ReLU())
    model.add_module("dense_2", nn.Linear(5, 3))
    by_name = dict(model.named_parameters())
    with torch.no_grad():
        for name, values in c["initial"].items():
            layer, kind = name.split("/")
            shape = c["shapes"][name]
            t = torch.tensor(values, dtype=torch.float32).reshape(shape)
            by_name[layer + (".weight" if kind == "kernel" else ".bias")].copy_(t.t() if kind == "kernel" else t)
    x = torch.tensor(c["x"], dtype=torch.float32).reshape(c["xShape"])
    labels = torch.tensor(c["labels"])
    bs = c["batchSize"]
    batches = [(x[i:i + bs], labels[i:i + bs]) for i in range(0, x.shape[0], bs)]
    losses, trajectory = [], []

    def loss_fn(out, y):
        loss = F.cross_entropy(out, y)
        losses.append(loss.item())
        return loss

    def record(kind, step, optimizer, k):
        if kind == "step" and step > 0:
            trajectory.append(weights())

    def weights():
        flat = []
        for name in c["paramOrder"]:
            layer, kind = name.split("/")
            p = by_name[layer + (".weight" if kind == "kernel" else ".bias")].detach()
            flat += (p.t() if kind == "kernel" else p).contiguous().reshape(-1).tolist()
        return flat

    run_training(mod, model, batches, mod.TOTAL_EPOCHS, loss_fn, record)
    trajectory.append(weights())
    return {"losses": losses, "trajectory": trajectory}


def hf_batches(args, seed=2):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randint(0, 24, (2, 4), generator=gen), torch.randint(0, 2, (2,), generator=gen))
            for _ in range(args["stepsPerEpoch"])]


def hf_trainer(mod, model, args, batches, steps):
    import transformers  # the stand-in
    names = {id(p): n for n, p in model.named_parameters()}

    def on_step(trainer, step):
        lrs = {}
        for g in trainer.optimizer.param_groups:
            for p in g["params"]:
                lrs[names[id(p)]] = g["lr"]
        steps.append({"step": step, "lrs": lrs})

    targs = transformers.TrainingArguments(output_dir="unused", num_train_epochs=args.get("epochs", mod.TOTAL_EPOCHS))
    trainer = mod.LayerwiseTrainer(model=model, args=targs, train_dataset=batches, callbacks=[mod.LayerwiseStages()])
    trainer.on_step = on_step
    return trainer


def cmd_hf(args):
    """The hf-trainer export under a stand-in for transformers' Trainer loop and accelerate's
    optimizer wrapper (test/python/stub). With "again", train() is called a second time on the
    same Trainer, as a user re-running a notebook cell does."""
    sys.path.insert(0, os.path.join(HERE, "stub"))
    mod = load_module(args["module"])
    steps, again = [], []
    trainer = hf_trainer(mod, bertlike(args), args, hf_batches(args), steps)
    try:
        trainer.train()
        if args.get("again"):
            trainer.on_step = hf_trainer(mod, trainer.model, args, [], again).on_step
            trainer.train()
    except ValueError as e:
        return {"error": str(e)}
    return {"steps": steps, "again": again}


def cmd_hf_resume(args):
    """An uninterrupted run that saves a checkpoint after step args["saveAt"], and a new Trainer
    resumed from it: the LRs of the steps after it and the final weights of both."""
    sys.path.insert(0, os.path.join(HERE, "stub"))
    mod = load_module(args["module"])
    folder = args["checkpoint"]
    whole, resumed = [], []
    a = hf_trainer(mod, bertlike(args), args, hf_batches(args), whole)
    a.save_at = (args["saveAt"], folder)
    a.train()
    b = hf_trainer(mod, bertlike(dict(args, seed=99)), args, hf_batches(args), resumed)
    try:
        b.train(resume_from_checkpoint=folder)
    except (ValueError, RuntimeError) as e:
        return {"error": "%s: %s" % (type(e).__name__, e)}
    diff = max(float((p - q).abs().max()) for p, q in zip(a.model.parameters(), b.model.parameters()))
    return {"whole": whole, "resumed": resumed, "maxWeightDiff": diff}


def _hf_ddp_rank(rank, args, init_file, out):
    torch.distributed.init_process_group("gloo", init_method="file://" + init_file, rank=rank, world_size=2)
    sys.path.insert(0, os.path.join(HERE, "stub"))
    mod = load_module(args["module"])
    model = bertlike(args)
    # different data on each rank, as a DistributedSampler gives: their gradients differ
    trainer = hf_trainer(mod, model, args, hf_batches(args, seed=10 + rank), [])
    trainer.train()
    with open(os.path.join(out, "rank%d.json" % rank), "w") as f:
        json.dump({n: p.detach().reshape(-1).tolist() for n, p in model.named_parameters()}, f)
    torch.distributed.destroy_process_group()


def cmd_hf_ddp(args):
    """The hf-trainer export on 2 gloo ranks under DistributedDataParallel (the stand-in wraps the
    model as accelerate does, once, at the start): which parameters end different on the two ranks."""
    import tempfile
    out = tempfile.mkdtemp()
    torch.multiprocessing.spawn(_hf_ddp_rank, args=(args, os.path.join(out, "init"), out), nprocs=2, join=True)
    ranks = []
    for r in range(2):
        with open(os.path.join(out, "rank%d.json" % r)) as f:
            ranks.append(json.load(f))
    return {"differ": [n for n in ranks[0] if ranks[0][n] != ranks[1][n]], "params": len(ranks[0])}


def cmd_mmengine(args):
    """Builds param groups the way MMEngine's DefaultOptimWrapperConstructor.add_params does
    (transcribed from mmengine/optim/optimizer/default_constructor.py: custom_keys as substrings of
    `prefix.name`, longest key first) from the exported config, and reports each parameter's result."""
    namespace = {}
    with open(args["config"]) as f:
        exec(compile(f.read(), args["config"], "exec"), namespace)
    wrapper = namespace["optim_wrapper"]
    base_lr = wrapper["optimizer"]["lr"]
    base_wd = wrapper["optimizer"].get("weight_decay")
    custom_keys = wrapper["paramwise_cfg"]["custom_keys"]
    sorted_keys = sorted(sorted(custom_keys.keys()), key=len, reverse=True)
    model = bertlike(args)
    rows = []

    def add_params(module, prefix=""):
        for name, param in module.named_parameters(recurse=False):
            group = {"lr": base_lr, "weight_decay": base_wd, "requires_grad": True, "key": None}
            for key in sorted_keys:
                if key in f"{prefix}.{name}":
                    group["lr"] = base_lr * custom_keys[key].get("lr_mult", 1.0)
                    if base_wd is not None:
                        group["weight_decay"] = base_wd * custom_keys[key].get("decay_mult", 1.0)
                    group["requires_grad"] = custom_keys[key].get("requires_grad", True)
                    group["key"] = key
                    break
            rows.append({"name": f"{prefix}.{name}" if prefix else name, **group})
        for child_name, child in module.named_children():
            add_params(child, f"{prefix}.{child_name}" if prefix else child_name)

    add_params(model)
    return {"rows": rows, "keys": len(custom_keys), "optimizer": wrapper["optimizer"]["type"]}


def cmd_mmengine_step(args):
    """The exported config under a transcription of MMEngine 0.11.0rc0's DefaultOptimWrapperConstructor
    (mmengine/optim/optimizer/default_constructor.py, add_params), which like the real one does NOT
    freeze: a parameter that is already requires_grad=False joins as a bare group and is skipped,
    a custom key's entries (requires_grad included) are only copied into the param group, and
    bypass_duplicate skips a parameter already in a group (a tied weight). Then the optimizer the
    config names takes one real step, and the report says which parameters changed."""
    namespace = {}
    with open(args["config"]) as f:
        exec(compile(f.read(), args["config"], "exec"), namespace)
    wrapper = namespace["optim_wrapper"]
    optimizer_cfg = dict(wrapper["optimizer"])
    paramwise = wrapper.get("paramwise_cfg", {})
    base_lr, base_wd = optimizer_cfg.get("lr"), optimizer_cfg.get("weight_decay")
    custom_keys = paramwise.get("custom_keys", {})
    sorted_keys = sorted(sorted(custom_keys.keys()), key=len, reverse=True)
    bypass_duplicate = paramwise.get("bypass_duplicate", False)
    model = bertlike(args)
    if args.get("tie"):
        # an output projection sharing the word embeddings (BERT's MLM decoder)
        model.decoder = nn.Linear(model.embeddings.word_embeddings.embedding_dim, model.embeddings.word_embeddings.num_embeddings, bias=False)
        model.decoder.weight = model.embeddings.word_embeddings.weight
    names = {id(p): n for n, p in model.named_parameters()}
    params = []

    def is_in(group):
        return any(not set(group["params"]).isdisjoint(set(g["params"])) for g in params)

    def add_params(module, prefix=""):
        for name, param in module.named_parameters(recurse=False):
            group = {"params": [param]}
            if not param.requires_grad:
                params.append(group)
                continue
            if bypass_duplicate and is_in(group):
                continue
            for key in sorted_keys:
                if key in f"{prefix}.{name}":
                    group["lr"] = base_lr * custom_keys[key].get("lr_mult", 1.0)
                    if base_wd is not None:
                        group["weight_decay"] = base_wd * custom_keys[key].get("decay_mult", 1.0)
                    for k, v in custom_keys[key].items():
                        group[k] = v
                    break
            params.append(group)
        for child_name, child in module.named_children():
            add_params(child, f"{prefix}.{child_name}" if prefix else child_name)

    add_params(model)
    kind = optimizer_cfg.pop("type")
    try:
        optimizer = getattr(torch.optim, kind)(params, **optimizer_cfg)
    except ValueError as e:
        return {"error": str(e)}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    gen = torch.Generator().manual_seed(5)
    model.train()
    loss = F.cross_entropy(model(torch.randint(0, 24, (4, 6), generator=gen)), torch.randint(0, 2, (4,), generator=gen))
    loss.backward()
    optimizer.step()
    rows = []
    for group in optimizer.param_groups:
        for p in group["params"]:
            n = names[id(p)]
            rows.append({"name": n, "lr": group["lr"], "weight_decay": group["weight_decay"], "requires_grad": p.requires_grad,
                         "changed": not torch.equal(before[n], p.detach())})
    return {"rows": rows}


def cmd_seed(args):
    """The seed's get_parameter_groups on a BertModel-like model (whose base_model is the model
    itself, as AutoModel's is) with the seed's classifier attached: what AdamW makes of it."""
    sys.path.insert(0, os.path.join(HERE))
    import seed_snippet
    return seed_snippet.run()


COMMANDS = {"names": cmd_names, "groups": cmd_groups, "schedule": cmd_schedule, "lrs": cmd_lrs, "mlp": cmd_mlp,
            "hf": cmd_hf, "hf_resume": cmd_hf_resume, "hf_ddp": cmd_hf_ddp, "mmengine": cmd_mmengine, "mmengine_step": cmd_mmengine_step, "seed": cmd_seed}

if __name__ == "__main__":
    command = sys.argv[1]
    arguments = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    json.dump(COMMANDS[command](arguments), sys.stdout)
