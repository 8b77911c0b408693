"""Audit of framework Transformer layers' dropout sites by code probes (issue 15, item 6)."""

from __future__ import annotations

import pytest

from dropout_ref.conformance.transformer import REFERENCES, SITES, markdown_table


def _sites(audit):
    return {site for site, finding in audit.findings.items() if finding.rates}


def test_probe_finds_exactly_the_sites_of_a_known_block():
    """The tracer itself: a block that drops where the 2017 paper does, and nowhere else."""
    torch = pytest.importorskip("torch")
    from torch import nn

    from dropout_ref.conformance.transformer.torch import _audit

    class PaperBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(11, 8)
            self.qkv, self.proj = nn.Linear(8, 24), nn.Linear(8, 8)
            self.fc, self.out = nn.Linear(8, 16), nn.Linear(16, 8)

        def forward(self, idx):
            drop = nn.functional.dropout
            x = drop(self.emb(idx), 0.3, self.training)
            q, k, v = self.qkv(x).split(8, dim=-1)
            att = (q @ k.transpose(-2, -1)).softmax(-1)
            x = x + drop(self.proj(att @ v), 0.3, self.training)
            return x + drop(self.out(torch.relu(self.fc(x))), 0.3, self.training)

    block = PaperBlock()
    idx = torch.randint(0, 11, (2, 5))
    audit = _audit("PaperBlock", block, lambda: block(idx), "test")
    assert _sites(audit) == {"embeddings", "attention output", "FFN output"}
    assert all(f.rates == {0.3} and f.calls == 1 for f in audit.findings.values())
    assert audit.eval_calls == 0


def test_torch_layers_drop_only_in_training_and_at_known_sites():
    pytest.importorskip("torch")
    from dropout_ref.conformance.transformer.torch import layer_audits

    audits = layer_audits()
    assert audits
    for audit in audits:
        assert audit.eval_calls == 0, audit.layer
        assert not audit.unexpected(), (audit.layer, audit.unexpected())
    encoder = next(a for a in audits if a.layer.startswith("nn.TransformerEncoderLayer"))
    decoder = next(a for a in audits if a.layer.startswith("nn.TransformerDecoderLayer"))
    # The findings docs/transformer.md reports: more sites than the paper's section 5.4.
    assert _sites(encoder) == {
        "attention probabilities", "attention output", "FFN hidden activation", "FFN output"
    }
    assert _sites(decoder) == _sites(encoder) | {
        "cross-attention probabilities", "cross-attention output"
    }


def test_hugging_face_gpt2_and_bert_drop_where_their_configs_say():
    pytest.importorskip("transformers")
    from dropout_ref.conformance.transformer.torch import hf_audits

    audits = hf_audits()
    expected = {
        "GPT2": set(REFERENCES["GPT-2 (Hugging Face GPT2Config)"][0]),
        "Bert": set(REFERENCES["BERT (Devlin et al. 2019)"][0]),
    }
    assert len(audits) == 4
    for audit in audits:
        model = "GPT2" if "GPT2" in audit.layer else "Bert"
        assert _sites(audit) == expected[model], audit.layer
        assert audit.eval_calls == 0


def test_keras_multi_head_attention_drops_the_attention_probabilities_only():
    pytest.importorskip("keras")
    from dropout_ref.conformance.transformer.keras import audits

    (audit,) = audits()
    assert _sites(audit) == {"attention probabilities"} and audit.eval_calls == 0


def test_flax_nnx_multi_head_attention_drops_the_attention_probabilities_only():
    pytest.importorskip("flax.nnx")
    from dropout_ref.conformance.transformer.flax import audits

    (audit,) = audits()
    assert set(audit.findings) == {"attention probabilities"} and audit.eval_calls == 0


def test_markdown_table_has_a_column_per_site_and_the_references():
    table = markdown_table([])
    header = table.splitlines()[0]
    assert all(site in header for site in SITES)
    assert all(name in table for name in REFERENCES)
