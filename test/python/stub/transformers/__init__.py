"""A stand-in for the parts of transformers' Trainer that the hf-trainer export relies on, so the
export can run where transformers is not installed. Not transformers: it follows the order of
Trainer._inner_training_loop (create_optimizer, create_scheduler(num_training_steps), then per
epoch on_epoch_begin; per step model.train(), forward, backward, optimizer.step(),
lr_scheduler.step(), zero_grad) and nothing else. The test says so where it reports."""
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


class Trainer:
    def __init__(self, model, args, train_dataset, callbacks=()):
        self.model = model
        self.args = args
        self.train_dataset = train_dataset
        self.callbacks = list(callbacks)
        self.optimizer = None
        self.lr_scheduler = None
        self.state = TrainerState()
        self.on_step = None

    def create_optimizer(self):
        raise NotImplementedError

    def create_scheduler(self, num_training_steps, optimizer=None):
        raise NotImplementedError

    def train(self):
        per_epoch = len(self.train_dataset)
        epochs = int(self.args.num_train_epochs)
        self.create_optimizer()
        self.create_scheduler(num_training_steps=per_epoch * epochs, optimizer=self.optimizer)
        for epoch in range(epochs):
            for cb in self.callbacks:
                cb.on_epoch_begin(self.args, self.state, None, model=self.model, optimizer=self.optimizer,
                                  lr_scheduler=self.lr_scheduler)
            for i, (inputs, labels) in enumerate(self.train_dataset):
                if self.on_step is not None:
                    self.on_step(self, self.state.global_step)
                self.model.train()
                loss = F.cross_entropy(self.model(inputs), labels)
                loss.backward()
                self.optimizer.step()
                self.lr_scheduler.step()
                self.model.zero_grad(set_to_none=True)
                self.state.global_step += 1
                self.state.epoch = epoch + (i + 1) / per_epoch
