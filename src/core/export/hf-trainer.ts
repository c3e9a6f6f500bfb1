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
    `${PYTORCH_IMPORTS}\nfrom transformers import Trainer, TrainerCallback`,
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
        return self.lr_scheduler


class LayerwiseStages(TrainerCallback):
    """Applies the plan's unfreezing stages at the start of their first epoch: apply_stage adds
    the newly trained parameters as new param groups with fresh state, keeps the state of those
    already training, and PlanSchedule gives the new groups the scheduled LR from their first step."""

    def on_epoch_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        k = stage_of_epoch(int(round(state.epoch or 0)))
        if k != getattr(_unwrap(optimizer), "layerwise_stage", 0):
            apply_stage(model, optimizer, k)`;

const HF_USAGE = `    trainer = LayerwiseTrainer(
        model=model,
        args=TrainingArguments(output_dir="out", num_train_epochs=TOTAL_EPOCHS, ...),
        train_dataset=train_dataset,
        callbacks=[LayerwiseStages()],
    )
    trainer.train()

print_plan(model) prints every parameter's settings and the rule that decided each.`;
