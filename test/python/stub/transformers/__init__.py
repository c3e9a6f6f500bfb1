"""A stand-in for the parts of transformers' Trainer (and accelerate) that the hf-trainer export
relies on, so the export can run where transformers is not installed. Not transformers: it follows
the order of Trainer._inner_training_loop and nothing else —
  - a new train() drops a scheduler the Trainer created before (`_created_lr_scheduler`);
  - create_optimizer, create_scheduler(num_training_steps, optimizer) on the bare torch optimizer;
  - then, as accelerator.prepare does, the model is wrapped in DistributedDataParallel when
    torch.distributed is initialised, and the optimizer in an AcceleratedOptimizer: a subclass
    of torch.optim.Optimizer that keeps the real one as `.optimizer` (accelerate/optimizer.py);
  - resuming: _load_optimizer_and_scheduler(checkpoint) loads optimizer.pt and scheduler.pt, and
    only then is trainer_state.json read; the epochs already done are skipped, and the steps
    already done in the current epoch (on_epoch_begin still runs for that epoch);
  - per epoch on_epoch_begin; per step training_step(model, inputs) (forward, backward),
    optimizer.step(), lr_scheduler.step(), zero_grad.
The test says so where it reports."""
import json
import os

import torch
import torch.nn.functional as F


class TrainingArguments:
    def __init__(self, output_dir, num_train_epochs=3.0, max_steps=-1, **kwargs):
        self.output_dir = output_dir
        self.num_train_epochs = num_train_epochs
        self.max_steps = max_steps


class TrainerState:
    def __init__(self):
        self.epoch = 0.0
        self.global_step = 0


class TrainerCallback:
    def on_epoch_begin(self, args, state, control, **kwargs):
        pass


class AcceleratedOptimizer(torch.optim.Optimizer):
    """accelerate's wrapper, reduced to what a single-device or DDP run uses: it IS a
    torch.optim.Optimizer (isinstance is True) and keeps the real one as .optimizer."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    @property
    def state(self):
        return self.optimizer.state

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @param_groups.setter
    def param_groups(self, groups):
        self.optimizer.param_groups = groups

    @property
    def defaults(self):
        return self.optimizer.defaults

    def add_param_group(self, group):
        self.optimizer.add_param_group(group)

    def load_state_dict(self, state_dict):
        self.optimizer.load_state_dict(state_dict)

    def state_dict(self):
        return self.optimizer.state_dict()

    def zero_grad(self, set_to_none=True):
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        self.optimizer.step(closure)


class Trainer:
    def __init__(self, model, args, train_dataset, callbacks=()):
        self.model = model
        self.args = args
        self.train_dataset = train_dataset
        self.callbacks = list(callbacks)
        self.optimizer = None
        self.lr_scheduler = None
        self._created_lr_scheduler = False
        self.state = TrainerState()
        self.on_step = None
        self.save_at = None

    def create_optimizer(self):
        raise NotImplementedError

    def create_scheduler(self, num_training_steps, optimizer=None):
        raise NotImplementedError

    def training_step(self, model, inputs):
        inputs, labels = inputs
        loss = F.cross_entropy(model(inputs), labels)
        loss.backward()
        return loss.detach()

    def _load_optimizer_and_scheduler(self, checkpoint):
        if checkpoint is None:
            return
        self.optimizer.load_state_dict(torch.load(os.path.join(checkpoint, "optimizer.pt")))
        self.lr_scheduler.load_state_dict(torch.load(os.path.join(checkpoint, "scheduler.pt")))

    def save_checkpoint(self, folder):
        os.makedirs(folder, exist_ok=True)
        torch.save(self.model.state_dict(), os.path.join(folder, "model.pt"))
        torch.save(self.optimizer.state_dict(), os.path.join(folder, "optimizer.pt"))
        torch.save(self.lr_scheduler.state_dict(), os.path.join(folder, "scheduler.pt"))
        with open(os.path.join(folder, "trainer_state.json"), "w") as f:
            json.dump({"global_step": self.state.global_step, "epoch": self.state.epoch}, f)

    def train(self, resume_from_checkpoint=None):
        if self._created_lr_scheduler:
            self.lr_scheduler = None
            self._created_lr_scheduler = False
        per_epoch = len(self.train_dataset)
        epochs = int(self.args.num_train_epochs)
        self.state = TrainerState()
        self.create_optimizer()
        self.create_scheduler(num_training_steps=per_epoch * epochs, optimizer=self.optimizer)
        model = self.model
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            model = torch.nn.parallel.DistributedDataParallel(self.model)
        self.optimizer = AcceleratedOptimizer(self.optimizer)
        if resume_from_checkpoint is not None:
            self.model.load_state_dict(torch.load(os.path.join(resume_from_checkpoint, "model.pt")))
            self._load_optimizer_and_scheduler(resume_from_checkpoint)
            with open(os.path.join(resume_from_checkpoint, "trainer_state.json")) as f:
                saved = json.load(f)
            self.state.global_step, self.state.epoch = saved["global_step"], saved["epoch"]
        epochs_trained = self.state.global_step // per_epoch
        skip = self.state.global_step % per_epoch
        for epoch in range(epochs_trained, epochs):
            for cb in self.callbacks:
                cb.on_epoch_begin(self.args, self.state, None, model=self.model, optimizer=self.optimizer,
                                  lr_scheduler=self.lr_scheduler)
            for i, inputs in enumerate(self.train_dataset):
                if epoch == epochs_trained and i < skip:
                    continue
                if self.on_step is not None:
                    self.on_step(self, self.state.global_step)
                model.train()
                self.training_step(model, inputs)
                self.optimizer.step()
                self.lr_scheduler.step()
                self.model.zero_grad(set_to_none=True)
                self.state.global_step += 1
                self.state.epoch = epoch + (i + 1) / per_epoch
                if self.save_at is not None and self.state.global_step == self.save_at[0]:
                    self.save_checkpoint(self.save_at[1])
