"""Workloads: validated training and inference jobs, presets, and errors that name the field."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from planner import InferenceJob, TrainingJob, conll2003_bert_finetune, list_workloads, workload
from planner.model.spec import model


def _train(**changes):
    fields = dict(model="llama-2-7b", n_tokens=2e12, seq_len=4096, global_batch_size=1024)
    return TrainingJob(**{**fields, **changes})


def test_training_job_accepts_a_preset_name_and_counts_steps():
    job = _train()
    assert job.model == model("llama-2-7b")
    # 2e12 / (1024 * 4096) = 476,837.16 -> 476,838 steps
    assert job.tokens_per_step == 4_194_304
    assert job.n_steps == 476_838
    assert job.goodput_frac is None and job.tp is None and job.zero_stage is None
    # the goodput follows from the device count (P24-P28): 0.916 on 16,384 GPUs
    assert float(job.goodput(16384)) == pytest.approx(0.91602, abs=1e-5)


def test_conll2003_preset_is_the_seed_documents_example():
    job = conll2003_bert_finetune()
    assert job.model.name == "bert-base-cased"
    # ceil(14041 / 8) = 1756 steps per epoch, 3 epochs = 5268 steps of 8 * 128 tokens
    assert job.n_steps == 5268
    assert job.n_tokens == 5268 * 8 * 128 == 5_394_432
    assert (job.global_batch_size, job.seq_len, job.precision, job.n_devices) == (8, 128, "fp32",
                                                                                  1)
    assert workload("conll2003-bert-finetune") == job


def test_every_preset_builds_and_takes_overrides():
    for name in list_workloads():
        assert workload(name).name == name
    job = workload("llama-2-7b-pretrain", n_devices=64)
    assert job.n_devices == 64 and job.n_tokens == 2e12


@pytest.mark.parametrize(("changes", "field"), [
    (dict(n_tokens=-1), "n_tokens"),
    (dict(seq_len=0), "seq_len"),
    (dict(global_batch_size=0), "global_batch_size"),
    (dict(precision="fp12"), "precision"),
    (dict(precision="int8"), "precision"),  # inference-only policy
    (dict(optimizer="lion"), "optimizer"),
    (dict(zero_stage=4), "zero_stage"),
    (dict(recompute="some"), "recompute"),
    (dict(n_devices=12, tp=8), "n_devices"),
    (dict(pp=33), "pp"),
    (dict(micro_batch_size=2048), "micro_batch_size"),
    (dict(goodput_frac=1.5), "goodput_frac"),
    (dict(compute_frac=0), "compute_frac"),
    (dict(efficiency_overrides={"speed": 2.0}), "efficiency_overrides"),
    (dict(efficiency_overrides={"network_frac": 2.0}), "efficiency_overrides"),
    (dict(model="llama-9"), "model"),
    (dict(deadline_s=0), "deadline_s"),
    (dict(colour="red"), "colour"),
])
def test_invalid_training_jobs_raise_value_error_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        _train(**changes)


def test_learned_positions_cap_the_sequence_length():
    with pytest.raises(ValueError, match="seq_len: 1024 exceeds bert-base-cased"):
        TrainingJob(model="bert-base-cased", n_tokens=1e6, seq_len=1024, global_batch_size=8)


def test_jobs_are_frozen():
    job = _train()
    with pytest.raises(ValidationError):
        job.seq_len = 1  # type: ignore[misc]


def test_from_epochs_validates_its_inputs():
    with pytest.raises(ValueError, match="n_samples"):
        TrainingJob.from_epochs("gpt2", n_samples=0, epochs=1, seq_len=128, global_batch_size=8)
    with pytest.raises(ValueError, match="epochs"):
        TrainingJob.from_epochs("gpt2", n_samples=10, epochs=0, seq_len=128,
                                global_batch_size=8)


def test_inference_job_defaults_and_load():
    job = InferenceJob(model="llama-2-70b", prompt_len=1024, output_len=256, requests_per_s=10)
    assert job.context_len == 1280 and job.precision == "bf16"
    closed = InferenceJob(model="llama-2-7b", prompt_len=128, output_len=128)
    assert closed.load_concurrency == 1  # neither load given: one request at a time
    assert InferenceJob(model="llama-2-7b", prompt_len=1, output_len=1,
                        precision="int8").precision == "int8"


@pytest.mark.parametrize(("changes", "field"), [
    (dict(requests_per_s=1.0, concurrent_requests=4), "requests_per_s"),
    (dict(model="gpt2", prompt_len=1000, output_len=100), "prompt_len"),  # 1100 > 1024
    (dict(kv_cache_precision="fp12"), "kv_cache_precision"),
    (dict(precision="fp99"), "precision"),
    (dict(ttft_s=-1.0), "ttft_s"),
    (dict(output_len=-1), "output_len"),
])
def test_invalid_inference_jobs_raise_value_error_naming_the_field(changes, field):
    fields = dict(model="llama-2-7b", prompt_len=128, output_len=128)
    with pytest.raises(ValueError, match=field):
        InferenceJob(**{**fields, **changes})


def test_serving_needs_a_causal_lm():
    message = ("output_len: bert-base-cased is an encoder without an LM head; generating "
               "tokens needs a causal LM (output_len=0 serves it as an encoder)")
    with pytest.raises(ValueError, match=re.escape(message)):
        InferenceJob(model="bert-base-cased", prompt_len=128, output_len=16)
    assert InferenceJob(model="bert-base-cased", prompt_len=128, output_len=0).output_len == 0
    headless = model("gpt2").with_(lm_head=False, tied_embeddings=False)
    with pytest.raises(ValueError, match="is a decoder without an LM head"):
        InferenceJob(model=headless, prompt_len=128, output_len=16)


def test_training_and_serving_agree_on_length_limits():
    """Only learned position embeddings cap the length (as planner.model.layers); rotary models may
    run past their trained context."""
    assert TrainingJob(model="llama-2-7b", n_tokens=1e9, seq_len=8192,
                       global_batch_size=8).seq_len == 8192  # > max_seq_len 4096
    assert InferenceJob(model="llama-2-7b", prompt_len=4000, output_len=200).context_len == 4200
    with pytest.raises(ValueError, match="seq_len: 2048 exceeds gpt2's max_seq_len=1024"):
        TrainingJob(model="gpt2", n_tokens=1e9, seq_len=2048, global_batch_size=8)
    with pytest.raises(ValueError, match="prompt_len: prompt_len \\+ output_len = 1100 exceeds "
                                         "gpt2's max_seq_len=1024"):
        InferenceJob(model="gpt2", prompt_len=1000, output_len=100)


def test_compute_frac_replaces_the_catalog_compute_fraction():
    job = _train(compute_frac=0.3)
    assert job.compute_frac == 0.3
    assert "compute_frac" in TrainingJob.model_fields
    assert "mfu_frac" not in TrainingJob.model_fields


def test_unknown_workload_suggests_names():
    with pytest.raises(ValueError, match="workload: unknown preset 'llama-2-7b-pretrian'; did "
                                         "you mean llama-2-7b-pretrain"):
        workload("llama-2-7b-pretrian")


def test_valid_but_odd_inputs_carry_warnings():
    # beyond the trained context (rotary: allowed, warned), and a one-step run
    long = TrainingJob(model="llama-2-7b", n_tokens=1e7, seq_len=10_000_000,
                       global_batch_size=1)
    assert long.warnings == (
        "seq_len: 10,000,000 tokens is beyond llama-2-7b's trained context of 4,096; the "
        "numbers hold, the model's quality there is unknown",
        "n_tokens: the run is only 1 optimizer step of 1 × 10,000,000 tokens: start-up, "
        "compilation and warm-up, which the model leaves out, would dominate")
    assert TrainingJob(model="llama-2-7b", n_tokens=2e12, seq_len=4096,
                       global_batch_size=1024).warnings == ()
    serve = InferenceJob(model="llama-2-7b", prompt_len=8000, output_len=100, batch_size=64,
                         concurrent_requests=4)
    assert [w.split(":")[0] for w in serve.warnings] == ["prompt_len + output_len",
                                                          "batch_size"]
    assert InferenceJob(model="llama-2-7b", prompt_len=1000, output_len=100).warnings == ()
