"""The seed's gradual-unfreezing snippet (/work/shared/seed, second listing), run on models with
BERT's structure at toy sizes, to state its defects from what it does rather than from reading it.

get_parameter_groups below is the seed's function with its comments shortened; the two models
stand for `AutoModel.from_pretrained('bert-base-uncased')` with the seed's classifier attached
(a BertModel, whose `base_model` is the model itself) and for a BertForSequenceClassification
(`model.bert` + `model.classifier`). transformers is not needed: only the attributes the function
looks at matter.
"""
import torch
import torch.optim as optim

from export_driver import BertLike, Classifier, Embeddings, Encoder, Pooler


def get_parameter_groups(model, lr_mults, freeze_layers):
    groups = []
    base_params = []
    specific_params = []
    if hasattr(model, 'base_model'):
        base = model.base_model
    elif hasattr(model, 'bert'):
        base = model.bert
    elif hasattr(model, 'transformer'):
        base = model.transformer
    else:
        raise Exception("no base or transformer part in the model")
    for name, param in base.named_parameters():
        if freeze_layers:
            param.requires_grad = False
        base_params.append(param)
    if hasattr(model, 'classifier'):
        for name, param in model.classifier.named_parameters():
            specific_params.append(param)
    elif hasattr(model, 'pooler'):
        for name, param in model.pooler.named_parameters():
            specific_params.append(param)
    else:
        raise Exception("no classifier or pooler in the model")
    extra_params = []
    for name, param in model.named_parameters():
        if not any([param is p for p in base_params]) and not any([param is p for p in specific_params]):
            extra_params.append(param)
    groups.append({'params': base_params, 'lr': lr_mults[0]})
    groups.append({'params': extra_params, 'lr': lr_mults[1]})
    groups.append({'params': specific_params, 'lr': lr_mults[2]})
    return groups


class AutoModelLike(torch.nn.Module):
    """A BertModel: embeddings, encoder, pooler; `base_model` is the model itself (PreTrainedModel
    returns getattr(self, "bert", self)). The seed then sets model.classifier."""

    def __init__(self):
        super().__init__()
        self.embeddings = Embeddings(24, 8, 8)
        self.encoder = Encoder(2, 8, 12)
        self.pooler = Pooler(8)

    @property
    def base_model(self):
        return self


class SequenceClassificationLike(torch.nn.Module):
    """BertForSequenceClassification's layout: model.bert (a BertModel) and model.classifier."""

    def __init__(self):
        super().__init__()
        self.bert = AutoModelLike()
        self.classifier = Classifier(8, 6, 2, False)


def run():
    torch.manual_seed(0)
    out = {}

    # As the seed writes it: AutoModel + model.classifier = classifier(768, 2)
    model = AutoModelLike()
    model.classifier = Classifier(8, 6, 2, False)
    groups = get_parameter_groups(model, [0.0, 0.0, 1e-5], freeze_layers=True)
    frozen_head = sum(1 for p in model.classifier.parameters() if not p.requires_grad)
    try:
        optim.AdamW(groups)
        out["automodel"] = {"optimizer": "built"}
    except ValueError as e:
        out["automodel"] = {"error": str(e)}
    out["automodel"]["groupSizes"] = [len(g["params"]) for g in groups]
    out["automodel"]["headParamsFrozenByStage1"] = frozen_head
    out["automodel"]["headParams"] = len(list(model.classifier.parameters()))

    # With model.bert, the branch the snippet was written for
    model = SequenceClassificationLike()
    stage1 = get_parameter_groups(model, [0.0, 0.0, 1e-5], freeze_layers=True)
    opt1 = optim.AdamW(stage1)
    frozen_in_optimizer = sum(1 for g in opt1.param_groups for p in g["params"] if not p.requires_grad)
    ids = torch.randint(0, 24, (2, 4))
    model.classifier(model.bert.pooler(model.bert.encoder(model.bert.embeddings(ids)))).sum().backward()
    opt1.step()
    head_state_stage1 = sum(1 for p in model.classifier.parameters() if p in opt1.state)
    stage2 = get_parameter_groups(model, [1e-6, 5e-6, 1e-5], freeze_layers=False)
    opt2 = optim.AdamW(stage2)
    decayed = sum(1 for g in opt2.param_groups for p in g["params"] if p.dim() == 1 and g["weight_decay"] > 0)
    out["sequenceClassification"] = {
        "groupSizes": [len(g["params"]) for g in stage1],
        "frozenParamsInStage1Optimizer": frozen_in_optimizer,
        "baseRequiresGradInStage2": any(p.requires_grad for p in model.bert.parameters()),
        "headStateAfterStage1": head_state_stage1,
        "headStateInStage2Optimizer": sum(1 for p in model.classifier.parameters() if p in opt2.state),
        "oneDimParamsDecayedInStage2": decayed,
        "weightDecay": opt2.param_groups[0]["weight_decay"],
    }
    return out
