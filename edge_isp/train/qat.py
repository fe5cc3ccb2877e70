"""Quantization-aware fine-tuning: the INT8 export's rounding, simulated in the training step.

The INT8 export (:func:`edge_isp.export.precision.quantize_int8`) rounds each quantized layer's
weights to 8 bits with one symmetric scale per output channel, and its input activations to 8
bits with one symmetric scale per tensor, set from the 99.99th percentile of ``|x|`` over
calibration frames (TensorRT's placement, :func:`edge_isp.export.precision.inputs_only`; held to
the export's file in tests/train/test_qat.py). Fine-tuning with the same rounding in the forward
pass and straight-through gradients in the backward pass (Jacob et al. 2018; Krishnamoorthi 2018)
lets the weights settle where the rounding costs least; models/README.md says what it measured
on the shipped models.

Which layers: the model's ``Conv2d`` and ``Linear`` modules that the export quantizes
(:func:`quantized_layers`), i.e. all of them but the ISP's outside its learned prior (the
numerically delicate parts the export keeps in float) and the output layers (no other
convolution or linear layer downstream: the export keeps them float too).

The checkpoint keeps plain weights: the rounding lives in per-instance ``forward`` overrides that
:meth:`FakeQuant.attach` installs and :meth:`FakeQuant.detach` removes, so a fine-tuned checkpoint
exports, loads and evaluates like any other; its INT8 file is then made by the usual
``edge-isp export precision``, whose calibration finds ranges close to the ones trained with.
The activation ranges are measured once, when fine-tuning starts (:func:`calibrate_ranges`), and
saved in the checkpoint (``fake_quant``) so that a resumed run rounds as the first one did.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from edge_isp.errors import InvalidInputError

# Symmetric signed 8 bits with the zero in the middle, as the export's Q/DQ graph (ONNX
# Runtime's symmetric INT8: -127..127, so that +x and -x round alike).
QMIN, QMAX = -127, 127
ISP_PRIOR = "isp.priors"
# At most this many |x| samples a layer keeps per calibration batch: the 99.99th percentile of a
# few hundred thousand samples has thousands above it, a stable estimate.
SAMPLES_PER_BATCH = 1 << 17


def _layers(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def _trace(model: nn.Module, run: Callable[[], Any]) -> tuple[list[str], set[str]]:
    """(the Conv2d/Linear layers that ran in ``run()``, in model order; those of them with no
    other such layer between them and the outputs of ``run()``)."""
    layers = _layers(model)
    made_by: dict[Any, str] = {}
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, name=name: made_by.__setitem__(out.grad_fn, name))
        for name, m in layers.items()
    ]
    try:
        with torch.enable_grad():
            outputs = run()
    finally:
        for hook in hooks:
            hook.remove()
    found, seen = set(), set()
    stack = [t.grad_fn for t in _tensors(outputs) if t.grad_fn is not None]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if fn in made_by:
            found.add(made_by[fn])
            continue
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    ran = set(made_by.values())
    return [name for name in layers if name in ran], found


def output_layers(model: nn.Module, run: Callable[[], Any]) -> list[str]:
    """The Conv2d/Linear modules of ``model`` with no other such module between them and the
    outputs of ``run()`` (a forward pass of ``model``): walked back through autograd's graph
    from every tensor ``run`` returns, stopping at the first layer on each path."""
    ran, found = _trace(model, run)
    return [name for name in ran if name in found]


def _tensors(value: Any) -> Iterable[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)


def quantized_layers(model: nn.Module, run: Callable[[], Any]) -> list[str]:
    """The Conv2d/Linear modules the INT8 export quantizes (module docstring), in model order:
    of those that run in ``run()`` (a forward pass; a module the pass does not use is not in
    the exported graph), all but the output layers and the ISP's outside its prior."""
    ran, outputs = _trace(model, run)
    return [
        name for name in ran if name not in outputs and not (name.startswith("isp.") and not name.startswith(ISP_PRIOR))
    ]


def fake_quant_weight(weight: Tensor) -> Tensor:
    """``weight`` rounded to 8 bits with one symmetric scale per output channel (dim 0), the
    largest magnitude of each channel mapping to 127; straight-through gradient."""
    flat = weight.detach().reshape(weight.shape[0], -1)
    scale = (flat.abs().amax(dim=1) / QMAX).clamp_min(1e-12).float()
    zero = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, QMIN, QMAX)


def fake_quant_activation(x: Tensor, scale: float) -> Tensor:
    """``x`` rounded to 8 bits at ``scale`` per step (symmetric, zero at 0): values past
    ``127 * scale`` clip, and pass no gradient (straight-through inside the range)."""
    return torch.fake_quantize_per_tensor_affine(x, scale, 0, QMIN, QMAX)


def _conv_forward(module: nn.Conv2d, x: Tensor) -> Tensor:
    x = fake_quant_activation(x, module._fake_quant_scale)
    return module._conv_forward(x, fake_quant_weight(module.weight), module.bias)


def _linear_forward(module: nn.Linear, x: Tensor) -> Tensor:
    x = fake_quant_activation(x, module._fake_quant_scale)
    return F.linear(x, fake_quant_weight(module.weight), module.bias)


def _percentile_scale(parts: list[Tensor], percentile: float) -> float:
    values = torch.cat(parts)
    k = max(1, min(values.numel(), round(values.numel() * percentile / 100.0)))
    return max(float(values.kthvalue(k).values), 1e-8) / QMAX


def calibrate_ranges(
    model: nn.Module, names: Iterable[str], batches: Iterable[Callable[[], Any]], percentile: float = 99.99
) -> dict[str, float]:
    """``{layer: activation scale}``: the ``percentile`` of ``|input|`` of each named layer over
    the forward passes ``batches`` yields (each a callable running ``model`` on one batch), as
    the export's percentile calibration measures it, divided by 127. Each layer keeps a random
    sample of at most :data:`SAMPLES_PER_BATCH` values a batch (fixed seed)."""
    if not 0 < percentile <= 100:
        raise InvalidInputError(f"percentile must be in (0, 100], got {percentile}")
    layers = _layers(model)
    names = list(names)
    unknown = [n for n in names if n not in layers]
    if unknown:
        raise InvalidInputError(f"no Conv2d/Linear layer named {', '.join(unknown[:5])} in the model")
    samples: dict[str, list[Tensor]] = {n: [] for n in names}
    generator = torch.Generator().manual_seed(0)

    def keep(name: str, x: Tensor) -> None:
        values = x.detach().abs().reshape(-1).float().cpu()
        if values.numel() > SAMPLES_PER_BATCH:
            values = values[torch.randint(values.numel(), (SAMPLES_PER_BATCH,), generator=generator)]
        samples[name].append(values)

    hooks = [layers[n].register_forward_pre_hook(lambda _m, args, n=n: keep(n, args[0])) for n in names]
    count = 0
    try:
        with torch.no_grad():
            for run in batches:
                run()
                count += 1
    finally:
        for hook in hooks:
            hook.remove()
    if count == 0:
        raise InvalidInputError("calibrating the fake quantization needs at least one batch")
    return {n: _percentile_scale(samples[n], percentile) for n in names}


class FakeQuant:
    """The fake quantization of ``model``'s layers ``scales`` names, at those activation scales."""

    def __init__(self, model: nn.Module, scales: Mapping[str, float]) -> None:
        layers = _layers(model)
        unknown = [n for n in scales if n not in layers]
        if unknown:
            raise InvalidInputError(
                f"fake quantization names layer(s) the model lacks: {', '.join(unknown[:5])} "
                "(a checkpoint of another model?)"
            )
        bad = [n for n, v in scales.items() if not isinstance(v, (int, float)) or not v > 0]
        if bad:
            raise InvalidInputError(f"activation scale(s) must be numbers > 0: {', '.join(bad[:5])}")
        self.model = model
        self.scales = {n: float(v) for n, v in scales.items()}
        self.layers = {n: layers[n] for n in self.scales}

    def attach(self) -> FakeQuant:
        """Round in every named layer's forward from now on."""
        for name, layer in self.layers.items():
            layer._fake_quant_scale = self.scales[name]
            forward = _conv_forward if isinstance(layer, nn.Conv2d) else _linear_forward
            layer.forward = types.MethodType(forward, layer)
        return self

    def detach(self) -> None:
        """Back to float: the layers' own forward."""
        for layer in self.layers.values():
            layer.__dict__.pop("forward", None)
            layer.__dict__.pop("_fake_quant_scale", None)

    def state_dict(self) -> dict[str, float]:
        return dict(self.scales)
