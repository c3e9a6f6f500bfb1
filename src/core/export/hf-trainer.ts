/**
 * `layerwise export --to hf-trainer`: the PyTorch export plus a `Trainer` subclass whose
 * optimizer and schedule come from the plan, and a `TrainerCallback` that applies the stages.
 * Self-contained (torch + transformers), so it runs under torchrun, Accelerate or a notebook.
 */
import { PYTORCH_IMPORTS, pytorchCore, pytorchHeader } from './pytorch.ts';
import type { ExportInput } from './python.ts';

export function exportHfTrainer(input: ExportInput): string {
  return [
    pytorchHeader(input, 'hf-trainer', HF_USAGE),
    `${PYTORCH_IMPORTS}\nimport os\n\nfrom transformers import Trainer, TrainerCallback`,
    pytorchCore(input),
    HF_CLASSES,
  ].join('\n\n\n') + '\n';
}

const HF_CLASSES = `# ---- Hugging Face Trainer ${'-'.repeat(69)}


class LayerwiseTrainer(Trainer):
    """A Trainer whose optimizer and schedule are the plan's: per-group learning rates and weight
    decay, frozen parameters out of the optimizer, and PlanSchedule (which also schedules the
    groups a later stage adds). TrainingArguments' learning_rate, weight_decay, adam_* and
    lr_scheduler_type are not used. Stages are counted in epochs: set num_train_epochs to
    TOTAL_EPOCHS (no max_steps) and pass callbacks=[LayerwiseStages()]. A DeepSpeed config that
    defines its own optimizer or scheduler replaces these."""

    def create_optimizer(self, *args, **kwargs):
        if self.optimizer is None:
            self.optimizer = make_optimizer(self.model)
        return self.optimizer

    def create_scheduler(self, num_training_steps, optimizer=None):
        if self.lr_scheduler is None:
            if (self.args.max_steps is not None and self.args.max_steps > 0) or self.args.num_train_epochs != TOTAL_EPOCHS:
                raise ValueError("the plan's stages take %d epochs: set num_train_epochs=%d and leave max_steps unset"
                                 % (TOTAL_EPOCHS, TOTAL_EPOCHS))
            if num_training_steps % TOTAL_EPOCHS != 0:
                raise ValueError("%d optimizer steps do not divide into %d equal epochs" % (num_training_steps, TOTAL_EPOCHS))
            self.lr_scheduler = PlanSchedule(self.optimizer if optimizer is None else optimizer,
                                             num_training_steps // TOTAL_EPOCHS)
            # as Trainer.create_scheduler does: a later train() then builds a fresh schedule
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def _load_optimizer_and_scheduler(self, checkpoint):
        """A checkpoint saved in stage k holds stage k's param groups: the optimizer is given
        them (apply_stage up to the checkpoint's global step) before Trainer loads optimizer.pt."""
        state_file = os.path.join(checkpoint, "trainer_state.json") if checkpoint is not None else None
        if state_file is not None and os.path.isfile(state_file) and self.optimizer is not None:
            with open(state_file, encoding="utf-8") as f:
                step = int(json.load(f).get("global_step", 0))
            schedule = getattr(_unwrap(self.optimizer), "layerwise_schedule", None)
            if schedule is not None:
                # stage by stage, so the groups come in the order the saved run added them
                for k in range(getattr(_unwrap(self.optimizer), "layerwise_stage", 0) + 1, stage_at(step, schedule.steps_per_epoch)[0] + 1):
                    apply_stage(self.model, self.optimizer, k)
        return super()._load_optimizer_and_scheduler(checkpoint)

    def training_step(self, model, inputs, *args, **kwargs):
        return super().training_step(self._layerwise_ddp(model), inputs, *args, **kwargs)

    def _layerwise_ddp(self, model):
        """DistributedDataParallel registers the parameters that need a gradient when it is built;
        one unfrozen later would never be all-reduced and the ranks would drift apart. So the
        model is wrapped again (same options) whenever the set of trained parameters changes; the
        earlier wrapper's hooks stay idle, since its forward is no longer called. (With gradient
        accumulation the Trainer's no_sync then applies to the old wrapper: gradients are
        all-reduced at every micro-batch, which is correct, only slower.)"""
        ddp = torch.nn.parallel.DistributedDataParallel
        if not isinstance(model, ddp):
            return model
        key = tuple(id(p) for p in model.module.parameters() if p.requires_grad)
        cached = getattr(self, "_layerwise_wrapped", None)
        if cached is None or cached[0] is not model or cached[1] != key:
            wrapped = ddp(model.module, device_ids=model.device_ids, output_device=model.output_device,
                          broadcast_buffers=model.broadcast_buffers, find_unused_parameters=model.find_unused_parameters,
                          gradient_as_bucket_view=model.gradient_as_bucket_view)
            self._layerwise_wrapped = cached = (model, key, wrapped)
        return cached[2]


class LayerwiseStages(TrainerCallback):
    """Applies the plan's unfreezing stages at the start of their first epoch: apply_stage adds
    the newly trained parameters as new param groups with fresh state, keeps the state of those
    already training, and PlanSchedule gives the new groups the scheduled LR from their first step.
    The stage comes from the global step (a resumed run starts mid-epoch), not from state.epoch."""

    def on_epoch_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        inner = _unwrap(optimizer)
        schedule = getattr(inner, "layerwise_schedule", None)
        if schedule is not None:
            k = stage_at(state.global_step, schedule.steps_per_epoch)[0]
        else:
            k = stage_of_epoch(int(state.epoch or 0))
        if k != getattr(inner, "layerwise_stage", 0):
            apply_stage(model, optimizer, k)`;

const HF_USAGE = `    trainer = LayerwiseTrainer(
        model=model,
        args=TrainingArguments(output_dir="out", num_train_epochs=TOTAL_EPOCHS, ...),
        train_dataset=train_dataset,
        callbacks=[LayerwiseStages()],
    )
    trainer.train()

print_plan(model) prints every parameter's settings and the rule that decided each.`;
