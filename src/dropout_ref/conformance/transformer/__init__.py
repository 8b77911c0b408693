"""Where do Transformer layers drop? Code probes of framework layers (issue 15, item 6).

Each ``dropout_ref.conformance.transformer.<framework>`` module runs real layers
in training mode under an interceptor and reports every dropout it sees as a
:class:`Finding`: which tensor was dropped (:data:`SITES`), at what rate, how
often. Nothing is read off the source code: a layer that changed where it
drops would change its findings. The same run in eval mode must find nothing.

The sites, in a Transformer block's forward order:

``embeddings``
    The sum of token and position embeddings, before the first block.
``attention probabilities``
    The softmax of the (self-)attention scores, before the product with V
    (``cross-attention probabilities``: a decoder's attention to the encoder).
``attention output``
    The attention sub-layer's output projection, before the residual add
    (``cross-attention output`` likewise).
``FFN hidden activation``
    Inside the feed-forward sub-layer, after the activation, before the second
    linear layer (not in the 2017 paper, nor in BERT or GPT-2).
``FFN output``
    The feed-forward sub-layer's output projection, before the residual add.

:data:`REFERENCES` records the published models' sites with their sources,
for the table of ``docs/transformer.md`` (:func:`markdown_table`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dropout_ref.core.contract import ToolModule

SITES: tuple[str, ...] = (
    "embeddings",
    "attention probabilities",
    "attention output",
    "cross-attention probabilities",
    "cross-attention output",
    "FFN hidden activation",
    "FFN output",
)

#: Published architectures: site -> rate as configured by default, and the source.
REFERENCES: dict[str, tuple[dict[str, str], str]] = {
    "Transformer (Vaswani et al. 2017)": (
        {
            "embeddings": "0.1",
            "attention output": "0.1",
            "cross-attention output": "0.1",
            "FFN output": "0.1",
        },
        "§5.4 'Residual Dropout': the output of each sub-layer before the residual add, "
        "and the sums of embeddings and positional encodings; P_drop = 0.1 (base)",
    ),
    "BERT (Devlin et al. 2019)": (
        {
            "embeddings": "0.1",
            "attention probabilities": "0.1",
            "attention output": "0.1",
            "FFN output": "0.1",
        },
        "google-research/bert modeling.py: hidden_dropout_prob 0.1 (embeddings, both "
        "sub-layer outputs), attention_probs_dropout_prob 0.1",
    ),
    "GPT-2 (Hugging Face GPT2Config)": (
        {
            "embeddings": "0.1",
            "attention probabilities": "0.1",
            "attention output": "0.1",
            "FFN output": "0.1",
        },
        "transformers GPT2Config: embd_pdrop, attn_pdrop, resid_pdrop, each 0.1",
    ),
    "nanoGPT (Karpathy)": (
        {
            "embeddings": "0.0",
            "attention probabilities": "0.0",
            "attention output": "0.0",
            "FFN output": "0.0",
        },
        "model.py: transformer.drop, attn_dropout, resid_dropout (attention and MLP) "
        "with one config.dropout, 0.0 in train.py (0.2 in config/train_shakespeare_char.py)",
    ),
}


@dataclass
class Finding:
    """The dropouts one probe saw at one site."""

    #: One of :data:`SITES`, or a description of something unexpected.
    site: str
    #: The rates seen there.
    rates: set[float] = field(default_factory=set)
    #: How many dropout calls (per forward pass of the probed layer).
    calls: int = 0
    #: How the interceptor saw it (e.g. ``aten.bernoulli_ on (2, 2, 5, 5)``).
    evidence: list[str] = field(default_factory=list)


@dataclass
class LayerAudit:
    """What one layer drops in training mode, and whether it drops anything in eval mode."""

    #: The layer as constructed, e.g. ``torch.nn.TransformerEncoderLayer(dropout=0.1)``.
    layer: str
    #: Framework and version.
    framework: str
    #: Site -> finding, in forward order.
    findings: dict[str, Finding]
    #: Dropout calls seen in eval mode (0 for a correct layer).
    eval_calls: int
    #: How the probe intercepted the dropouts.
    method: str

    def cell(self, site: str) -> str:
        """Return the table cell of ``site``: the rate(s), ``-`` where nothing is dropped."""
        finding = self.findings.get(site)
        if finding is None:
            return "-"
        return "/".join(f"{rate:g}" for rate in sorted(finding.rates))

    def unexpected(self) -> list[str]:
        """Return the findings at no known site."""
        return [site for site in self.findings if site not in SITES]


class Recorder:
    """Collects findings in forward order (used by the framework probes)."""

    def __init__(self) -> None:
        self.findings: dict[str, Finding] = {}

    def add(self, site: str, rate: float, evidence: str) -> None:
        """Record one dropout at ``site`` with rate ``rate``."""
        finding = self.findings.setdefault(site, Finding(site))
        finding.rates.add(round(float(rate), 6))
        finding.calls += 1
        if evidence not in finding.evidence:
            finding.evidence.append(evidence)

    @property
    def calls(self) -> int:
        """Total dropout calls recorded."""
        return sum(f.calls for f in self.findings.values())


#: Framework probe modules, each with ``audits() -> list[LayerAudit]``.
FRAMEWORKS: tuple[str, ...] = ("torch", "keras", "flax")

#: The contract of ``dropout_ref.conformance.transformer.<framework>``.
TRANSFORMER_AUDIT = ToolModule(
    tool="transformer layer audit",
    pattern="dropout_ref.conformance.transformer.{backend}",
    backends=FRAMEWORKS,
    required={"audits": "() -> list[LayerAudit], the framework's Transformer layers probed"},
)


def audit_all(frameworks: Iterable[str] = FRAMEWORKS) -> tuple[list[LayerAudit], dict[str, str]]:
    """Run every installed framework's probes: ``(audits, {framework: why skipped})``."""
    audits: list[LayerAudit] = []
    skipped: dict[str, str] = {}
    for name in frameworks:
        try:
            module = TRANSFORMER_AUDIT.load(name)
            audits.extend(module.audits())
        except ImportError as exc:  # the framework (imported by the probe) is missing
            skipped[name] = f"not installed ({exc})"
    return audits, skipped


def markdown_table(audits: Iterable[LayerAudit], references: bool = True) -> str:
    """Return a Markdown table: one row per architecture or layer, one column per site."""
    header = ["", *SITES, "eval mode"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    if references:
        for name, (rates, _) in REFERENCES.items():
            cells = [rates.get(site, "-") for site in SITES]
            lines.append(f"| {name} | " + " | ".join(cells) + " | off |")
    for audit in audits:
        cells = [audit.cell(site) for site in SITES]
        eval_cell = "off" if audit.eval_calls == 0 else f"{audit.eval_calls} calls!"
        lines.append(f"| `{audit.layer}` ({audit.framework}) | " + " | ".join(cells)
                     + f" | {eval_cell} |")
    return "\n".join(lines) + "\n"


def evidence_lines(audits: Iterable[LayerAudit]) -> str:
    """Return a Markdown list of how each finding was seen."""
    out = []
    for audit in audits:
        out.append(f"- `{audit.layer}` ({audit.framework}; {audit.method}):")
        for finding in audit.findings.values():
            out.append(
                f"  - {finding.site}: {finding.calls} call(s) at rate "
                f"{'/'.join(f'{r:g}' for r in sorted(finding.rates))}; "
                + "; ".join(finding.evidence)
            )
        out.append(f"  - eval mode: {audit.eval_calls} dropout call(s)")
    return "\n".join(out) + "\n"


def main() -> None:
    """Print the table and the evidence (``python -m dropout_ref.conformance.transformer``)."""
    audits, skipped = audit_all()
    print(markdown_table(audits))
    print(evidence_lines(audits))
    for name, why in skipped.items():
        print(f"- {name}: {why}")
