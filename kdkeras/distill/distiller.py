"""The `Distiller`: one student, K frozen teachers, the paper's loss and β step.

Chou, Chiu & Liao (2021) train the student with

    L_total = CE + (1/K)·Σ_k KL(p_T,k ‖ p_S) + (1/K)·Σ_k L_KD,k           (Eq. 9)

with the teacher means of the offline ensemble (Eq. 7–8), where L_KD,k is the
cross-layer Gram loss (Eq. 4) against teacher k, and scale the distillation
gradient by the sigmoid β of Sec. III-D (`kdkeras.distill.beta`).
This class composes those terms (it computes none of them: `kdkeras.losses`
does) and owns the gradient split. Every baseline of the paper is a
`DistillConfig` of this same class (`kdkeras.distill.config.METHODS`).

Why not `keras.distillation.Distiller`: Keras's built-in distiller sums its loss
terms into one scalar and takes one gradient, so it cannot measure ‖∇CE‖ and
‖∇KD‖ separately, which the β rule needs, and it holds a single teacher. Every
kdkeras loss term is also offered as a `keras.distillation.DistillationLoss`
(`kdkeras.losses.distillation_losses`) for users of the built-in class.
"""

from __future__ import annotations

from typing import Optional, Sequence

import keras
from keras import ops

from kdkeras import losses as kd_losses
from kdkeras.distill import ensemble, feature_terms, init_stage, steps
from kdkeras.distill.adapters import build_adapters, tap_channels
from kdkeras.distill.config import DistillConfig
from kdkeras.distill.input_contract import check_fit_inputs
from kdkeras.distill.nonfinite import NonFiniteGuard, SkipState, check_policy
from kdkeras.distill.teacher_checks import check_teacher_set
from kdkeras.distill.teacher_precision import reduced_precision_teacher, resolve_teacher_dtype
from kdkeras.models.folding import fold_batch_norms
from kdkeras.models.taps import tap_names as default_tap_names
from kdkeras.models.taps import tapped_model

_LOG_TERMS = ("loss", "ce", "kl", "feature", "beta", "tau", "ce_grad_norm",
              "kd_grad_norm", "kd_scale")


def as_list(outputs) -> list:
    """A tapped model's outputs as a list (Keras unwraps a one-element output list)."""
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _num_classes(model: keras.Model) -> int:
    return int(model.outputs[0].shape[-1])


def _architecture(model: keras.Model) -> tuple:
    """What two models of one architecture share: parameters, layers, output shape."""
    return (model.count_params(), len(model.layers), tuple(model.outputs[0].shape))


def _check_feature_maps(view: keras.Model, names, who: str) -> None:
    """Every tap must be an NHWC map with a static height and width.

    The feature losses read spatial maps (a Gram pair pools its larger map to
    the smaller one's size), so a pooled or flattened tap, or one of unknown
    size, would fail only inside the first train step.
    """
    for name, tensor in zip(names, view.outputs[1:]):
        shape = tuple(tensor.shape)
        if len(shape) != 4 or shape[1] is None or shape[2] is None:
            raise ValueError(
                f"Tap {name!r} of the {who} has shape {shape}, but feature taps must be "
                "(batch, height, width, channels) maps of known height and width: the Gram "
                "pairs pool one map of a pair to the other's spatial size, which this one has "
                "not. Tap a convolutional layer's output instead.")


def _check_arguments(student, teachers, config: DistillConfig, weight_decay: float) -> None:
    """One clear error, before any work, for arguments that cannot make a Distiller."""
    if not 0 <= weight_decay < float("inf"):  # also refuses NaN
        raise ValueError(f"weight_decay must be >= 0. Received: weight_decay={weight_decay}.")
    if config.uses_teachers and not teachers:
        raise ValueError(
            f"Method {config.method!r} distils from teachers, but none were given. "
            "Pass teachers=[...] or use method 'student'.")
    check_teacher_set(student, teachers)
    n_classes = _num_classes(student)
    for k, t in enumerate(teachers):
        if _num_classes(t) != n_classes:
            raise ValueError(
                f"Teacher {k} ({t.name}) predicts {_num_classes(t)} classes but the "
                f"student ({student.name}) predicts {n_classes}. They must match.")
    if config.uses_teachers and len(teachers) > 1:
        # P3 is an offline ensemble of K teachers of one architecture: the
        # 1/K means of the KL and feature terms average members of one kind.
        arch = [_architecture(t) for t in teachers]
        k = next((k for k in range(1, len(teachers)) if arch[k] != arch[0]), None)
        if k is not None:
            raise ValueError(
                f"Teachers 0 ({teachers[0].name}, {arch[0][0]:,} parameters) and {k} "
                f"({teachers[k].name}, {arch[k][0]:,} parameters) have different "
                "architectures; the K teachers must be an ensemble of one architecture "
                "(P3). Pass teachers of one architecture.")
    if config.teacher_precision == "int8_ahead" and keras.backend.backend() != "tensorflow":
        raise ValueError("teacher_precision='int8_ahead' runs TFLite teachers in a tf.data "
                         "pipeline: TensorFlow backend only. Received backend "
                         f"{keras.backend.backend()!r}; use 'float32' or 'bfloat16'.")


def _check_channels(k: int, t_channels, s_channels, adapter_index) -> None:
    """A Gram/FSP pair needs equal widths at each tap, or an adapter there."""
    for i, (ct, cs) in enumerate(zip(t_channels, s_channels)):
        if ct != cs and adapter_index[i] is None:
            raise ValueError(
                f"Tap {i + 1} has {ct} channels in teacher {k} and {cs} in the student, "
                "and adapter_side='none'. Use adapter_side='teacher' or 'student'.")


def _refuse_whole_model_checkpoints(callbacks) -> None:
    """A `ModelCheckpoint` of the whole Distiller is refused before training.

    The Distiller holds frozen teachers, adapters and a loss configuration, not
    one model with a config to rebuild it from, so `Distiller.save("x.keras")`
    cannot work (Keras would leave an empty file behind). Its weights can be
    checkpointed, and the student is the model to save.
    """
    for c in callbacks:
        if isinstance(c, keras.callbacks.ModelCheckpoint) and not c.save_weights_only:
            raise ValueError(
                "keras.callbacks.ModelCheckpoint would save the whole Distiller (teachers, "
                "adapters and all), which cannot be saved as a .keras model. Checkpoint its "
                "weights with ModelCheckpoint('ckpt.weights.h5', save_weights_only=True) "
                "(restore with distiller.load_weights), and save the student after fit with "
                "distiller.student.save('student.keras'). "
                f"Received: ModelCheckpoint(filepath={c.filepath!r}).")


class _EpochCallback(keras.callbacks.Callback):
    """Keeps the Distiller's epoch variable equal to the Keras epoch (read live under XLA)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.epoch.assign(float(epoch))


class Distiller(keras.Model):
    """Distils K frozen teachers into one student.

    Args:
      student: a Keras functional model whose output is the logits.
      teachers: K functional models of the same output size (frozen here: their
        `trainable` is set to False and they always run in inference mode).
      config: a `DistillConfig` (default: the paper's full method).
      student_taps, teacher_taps: layer names of the feature maps the feature
        losses use (default: the model's `tap_*` layers). Teacher and student
        must have the same number of taps.
      weight_decay: coupled L2 weight decay λ on every kernel: adds λ·W to the
        gradient, as `tf.contrib` L2 regularisers in the TF1 code of the paper's
        era and PyTorch's SGD `weight_decay` do. It sits outside the β rule
        (neither CE nor KD), as in sseung0703's `op_util.py`.
      teacher_dtype: the dtype the teachers compute in
        (`kdkeras.distill.teacher_precision.TEACHER_DTYPES`); for any other
        than float32 the Distiller runs frozen copies of them in that dtype.
        None: what `config.teacher_precision` says (float32 unless it is
        "bfloat16"). Teacher outputs are cast to float32 before any loss.
      fold_teacher_batchnorm: run views of the teachers with each
        BatchNormalization folded into the convolution before it
        (`kdkeras.models.folding`): the same function up to float32 round-off,
        fewer passes over the feature maps (a ResNet-32 forward 0.79–0.84× the
        time on a CPU). The folded teachers are views over the teachers'
        variables; the teachers kept and saved are unchanged.
    """

    _nonfinite_skip = None   # a `nonfinite.SkipState` once compiled with on_nonfinite="skip"

    def __init__(self, student: keras.Model, teachers: Sequence[keras.Model] = (),
                 config: Optional[DistillConfig] = None, *,
                 student_taps: Optional[Sequence[str]] = None,
                 teacher_taps: Optional[Sequence[str]] = None,
                 weight_decay: float = 1e-4, teacher_dtype: Optional[str] = None,
                 fold_teacher_batchnorm: bool = True,
                 name: str = "distiller", **kwargs):
        super().__init__(name=name, **kwargs)
        config = config or DistillConfig()
        teachers = list(teachers)
        _check_arguments(student, teachers, config, weight_decay)
        self.teacher_dtype = resolve_teacher_dtype(config.teacher_precision, teacher_dtype)
        # Frozen copies in the teacher dtype (float32: the teachers themselves).
        teachers = [reduced_precision_teacher(t, self.teacher_dtype) for t in teachers]
        # int8 teachers ahead of the step are converted from `self.teachers`;
        # their Keras views only name the taps, so folding them would gain nothing.
        self.fold_teacher_batchnorm = bool(fold_teacher_batchnorm) and (
            config.teacher_precision != "int8_ahead")
        self.config = config
        self.weight_decay = float(weight_decay)
        # Assigned first so that trainable_variables lists the student's variables
        # before the adapters' (combine_gradients measures norms on the student).
        self.student = student
        self.teachers = teachers
        for t in teachers:
            t.trainable = False
        self._build_views(student_taps, teacher_taps)
        self._build_adapters()
        s_taps = list(range(len(self.student_tap_names)))
        self.pairs = (kd_losses.cross_layer_pairs(s_taps, config.cross_depth)
                      if config.feature_loss in ("gram", "fsp") and len(s_taps) > 1 else [])
        # Issue 16: P3 variant options checked; fixed teacher tap rotations if asked for.
        self.teacher_alignment = ensemble.build(config, self._teacher_views)
        self.epoch = keras.Variable(0.0, dtype="float32", trainable=False, name="epoch")
        # A run without teachers logs only what it has (no β, τ or KD terms).
        names = _LOG_TERMS if self.has_kd else ("loss", "ce", "ce_grad_norm")
        self._trackers = {n: keras.metrics.Mean(name=n) for n in names}
        self._accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self._num_student_vars = len(student.trainable_variables)
        # Every sub-layer is built above; marking the Distiller built lets its
        # weights (and the optimizer's) be saved and restored before a first step.
        self.built = True

    # --- construction -----------------------------------------------------------
    def _build_views(self, student_taps, teacher_taps):
        """The student's and teachers' tapped views (logits, then the feature maps)."""
        config, student = self.config, self.student
        needs_taps = config.feature_loss is not None
        s_names = list(student_taps) if student_taps is not None else (
            default_tap_names(student) if needs_taps else [])
        if needs_taps and not s_names:
            raise ValueError(
                f"Feature loss {config.feature_loss!r} needs taps, and student {student.name!r} "
                "has no 'tap_' layers. Pass student_taps=[layer names].")
        # The tapped views share the models' layers; they are kept out of Keras's
        # tracking so that no variable is listed (or saved) twice.
        object.__setattr__(self, "_student_view", tapped_model(student, s_names))
        views, view_taps = [], []
        for t in self.teachers:
            names = list(teacher_taps) if teacher_taps is not None else (
                default_tap_names(t) if needs_taps else [])
            view_taps.append(names)
            if len(names) != len(s_names):
                raise ValueError(
                    "Teacher and student must expose the same number of taps. Received: "
                    f"{len(names)} taps for teacher {t.name!r} and {len(s_names)} for "
                    f"student {student.name!r}.")
            if self.fold_teacher_batchnorm:
                # A view over t's variables, so a checkpoint loaded into the teachers reaches it.
                t = fold_batch_norms(t, keep=names)
            views.append(tapped_model(t, names))
            if needs_taps:
                _check_feature_maps(views[-1], names, f"teacher {t.name!r}")
        object.__setattr__(self, "_teacher_views", views)
        # What int8 teachers run ahead of the step must return (teacher_precision="int8_ahead").
        object.__setattr__(self, "_teacher_view_taps", view_taps)
        object.__setattr__(self, "_int8_teachers", None)
        if needs_taps:
            _check_feature_maps(self._student_view, s_names, f"student {student.name!r}")
        self.student_tap_names = s_names

    def _build_adapters(self):
        """The 1×1 adapters, built here so the optimizer sees them: `self.adapters[j]`
        with j = `self._adapter_index[k][i]` for teacher k's tap i (None: no adapter)."""
        config = self.config
        self.adapters = []
        self._adapter_index = []
        # RKD compares pairwise distances and angles, which need no equal widths,
        # so it gets no adapters. SSKD_SVD holds its teacher input fixed, so a
        # teacher-side adapter there would never train: it must sit on the student.
        side = "none" if config.feature_loss == "rkd" else config.adapter_side
        s_channels = tap_channels(self._student_view)
        for k, view in enumerate(self._teacher_views):
            row = build_adapters(tap_channels(view), s_channels, side=side,
                                 always=config.always_adapt, prefix=f"adapter_t{k}"
                                 ) if config.feature_loss is not None else []
            if (config.feature_loss == "svd" and side == "teacher"
                    and any(a is not None for a in row)):
                raise ValueError(
                    "SSKD_SVD needs adapters here (teacher and student tap widths differ), "
                    "and its loss holds the teacher's maps fixed, so teacher-side adapters "
                    "would never train. Use adapter_side='student'.")
            idx = []
            for layer in row:
                idx.append(None if layer is None else len(self.adapters))
                if layer is not None:
                    self.adapters.append(layer)
            self._adapter_index.append(idx)
            if config.feature_loss in ("gram", "fsp"):
                _check_channels(k, tap_channels(view), s_channels, idx)

    @property
    def teacher_views(self) -> tuple:
        """The teachers' tapped views `[logits, taps...]` the step runs (folded, if asked)."""
        return tuple(self._teacher_views)

    @property
    def teacher_tap_names(self) -> tuple:
        """Each teacher's tap names, in the order its view returns them after the logits."""
        return tuple(tuple(names) for names in self._teacher_view_taps)

    # --- Keras API --------------------------------------------------------------
    @property
    def metrics(self):
        # compile(metrics=[...]) adds Keras's CompileMetrics, fed the student's logits.
        compiled = getattr(self, "_compile_metrics", None)
        return (list(self._trackers.values()) + [self._accuracy]
                + ([compiled] if compiled is not None else []))

    def call(self, x, training=False):
        return self.student(x, training=training)

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, *,
                on_nonfinite: str = "stop", **kwargs):
        """Keras's `compile`; the loss is the `DistillConfig`'s, so `loss=` is refused.

        `metrics=[...]` is honoured: each metric is computed on the student's
        logits (e.g. `keras.metrics.SparseTopKCategoricalAccuracy(k=5)`).
        `on_nonfinite`: what a step with a NaN/Inf loss term does
        (`kdkeras.distill.nonfinite`): `"stop"` (default) applies every step and
        `fit`'s guard stops the run; `"skip"` (TensorFlow only) applies a step
        only if its loss terms and gradients are finite, and counts the others.
        """
        if loss is not None or loss_weights is not None:
            raise ValueError(
                "The Distiller's loss is its DistillConfig's (CE, KL and the feature term, "
                "weighted by ce_weight, kl_weight and feature_weight), so compile(loss=...) "
                "and compile(loss_weights=...) are not used. Set them in the config "
                "(kdkeras.distill.method_config(method, **overrides)). "
                f"Received: loss={loss!r}, loss_weights={loss_weights!r}.")
        if check_policy(on_nonfinite) == "skip" and keras.backend.backend() != "tensorflow":
            raise ValueError(
                "on_nonfinite='skip' is implemented in the TensorFlow train step only. "
                f"Received: backend={keras.backend.backend()!r}; use on_nonfinite='stop'.")
        super().compile(optimizer=optimizer, **kwargs)
        # Plain TensorFlow variables held outside Keras's tracking: never checkpointed.
        object.__setattr__(self, "_nonfinite_skip", SkipState(self.distribute_strategy)
                           if on_nonfinite == "skip" else None)

    @property
    def on_nonfinite(self) -> str:
        """`"skip"` or `"stop"`: what `compile(on_nonfinite=...)` chose."""
        return "stop" if self._nonfinite_skip is None else "skip"

    @property
    def nonfinite_skip(self):
        """The skipped-step counter (`nonfinite.SkipState`) of on_nonfinite="skip", else None."""
        return self._nonfinite_skip

    def fit(self, x=None, *args, callbacks=None, **kwargs):
        """Keras's `fit`, stopped by a NaN/Inf loss term (`NonFiniteLossError`).

        Unless `callbacks` hold a `NonFiniteGuard`, one with the compiled
        `on_nonfinite` policy is added: with "stop", at the first non-finite
        loss term it puts back the student's weights of the start of that epoch
        and `fit` raises an error naming the term, the epoch and the step
        (`kdkeras.distill.nonfinite`).
        """
        check_fit_inputs([self.student, *self.teachers], x)  # raw pixels need normalising models
        callbacks = list(callbacks or [])
        _refuse_whole_model_checkpoints(callbacks)
        if not any(isinstance(c, _EpochCallback) for c in callbacks):
            callbacks.insert(0, _EpochCallback())
        init_stage.set_stage_epochs(self, kwargs.get("epochs", args[2] if len(args) > 2 else 1))
        x = ensemble.prepare_fit(self, x)   # fits teacher_alignment's rotations first
        own_guard = None
        if not any(isinstance(c, NonFiniteGuard) for c in callbacks):
            own_guard = NonFiniteGuard(self.on_nonfinite)
            callbacks.insert(1, own_guard)
        if self.config.teacher_precision == "int8_ahead" and self.has_kd:
            x = self.with_int8_teachers_ahead(x)
        history = super().fit(x, *args, callbacks=callbacks, **kwargs)
        if own_guard is not None:
            own_guard.raise_if_stopped()
        return history

    def with_int8_teachers_ahead(self, ds):
        """`ds` with the teachers' outputs attached by int8 TFLite teachers (built once).

        The teachers are converted and calibrated on the first 256 images of
        `ds` on the first call (`kdkeras.distill.teacher_outputs`); the train
        step then takes their outputs from the batch instead of running the
        Keras teachers.
        """
        import tensorflow as tf

        from kdkeras.distill import teacher_outputs as ahead

        if not isinstance(ds, tf.data.Dataset):
            raise ValueError("teacher_precision='int8_ahead' runs the teachers in the input "
                             "pipeline: pass a batched tf.data.Dataset of (images, labels). "
                             f"Received: {type(ds).__name__}.")
        spec = ds.element_spec[0] if isinstance(ds.element_spec, tuple) else ds.element_spec
        if isinstance(spec, dict) and "teacher_outputs" in spec:
            return ds   # already attached
        if self._int8_teachers is None:
            images = ahead.calibration_images(ds)
            object.__setattr__(self, "_int8_teachers", ahead.int8_teachers(
                self.teachers, self._teacher_view_taps, images))
        return ahead.attach_teacher_outputs(ds, self._int8_teachers)

    # --- the loss terms (shared by every backend's train step) ------------------
    def compute_terms(self, y, student_outputs, teacher_outputs):
        """CE, the teacher-mean KL and feature terms, and the two sides of the split.

        Returns a dict with scalars `ce`, `kl`, `feature`, `ce_side` (the loss
        whose gradient is ∇CE) and `kd_side` (the loss whose gradient is ∇KD).
        Everything is computed in float32 (mixed precision keeps losses exact).
        """
        c = self.config
        s_logits = ops.cast(student_outputs[0], "float32")
        s_feats = [ops.cast(f, "float32") for f in student_outputs[1:]]
        ce = ops.mean(keras.losses.sparse_categorical_crossentropy(y, s_logits, from_logits=True))
        zero = ops.zeros((), "float32")
        kl, feature = zero, zero
        k_teachers = len(teacher_outputs)
        teacher_feats = []
        variant = ensemble.uses_variant(c)   # issue 16's P3 variants: both terms there
        for t_out in teacher_outputs:
            t_logits = ops.cast(ops.stop_gradient(t_out[0]), "float32")
            teacher_feats.append([ops.cast(ops.stop_gradient(f), "float32") for f in t_out[1:]])
            if c.use_kl and not variant:
                kl = kl + ops.mean(kd_losses.kl_divergence(t_logits, s_logits,
                                                           temperature=c.temperature))
        if k_teachers and variant:
            kl, feature = ensemble.teacher_terms(self, y, s_logits, s_feats, teacher_outputs)
        elif k_teachers:
            kl = kl / k_teachers
            if c.feature_loss is not None:
                # The teacher mean; for the Gram losses with one student Gram per pair.
                feature = feature_terms.feature_term(self, teacher_feats, s_feats)
        # Two-stage FSP: the feature term alone first, then the task (init_stage.py).
        ce_side, weighted_kl, weighted_feature = init_stage.gate_terms(
            self, c.ce_weight * ce, c.kl_weight * kl, c.feature_weight * feature)
        if c.beta_terms == "feature":
            ce_side, kd_side = ce_side + weighted_kl, weighted_feature
        else:
            kd_side = weighted_kl + weighted_feature
        return {"ce": ce, "kl": kl, "feature": feature, "ce_side": ce_side,
                "kd_side": kd_side, "logits": s_logits}

    @property
    def has_kd(self) -> bool:
        return self.config.uses_teachers and bool(self.teachers)

    def teacher_outputs(self, x):
        return [as_list(view(x, training=False)) for view in self._teacher_views] if self.has_kd else []

    def student_outputs(self, x, training=True):
        return as_list(self._student_view(x, training=training))

    # --- train / test steps -----------------------------------------------------
    def train_step(self, *args):
        """`train_step(data)` (stateful), or the JAX trainer's `train_step(state, data)`."""
        backend = steps.backend_steps()
        if len(args) == 1:
            return backend.stateful_train_step(self, *args)
        return backend.train_step(self, *args)

    def test_step(self, *args):
        """`test_step(data)`, or the JAX trainer's `test_step(state, data)`."""
        if len(args) == 1:
            return steps.student_test_step(self, *args)
        return steps.backend_steps().test_step(self, *args)
