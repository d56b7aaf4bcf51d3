"""OLMES's own MMLU prompt code, taken from the pinned ai2-olmo-eval wheel, for the reference scripts.

`olmo_eval/tasks.py` cannot be imported without its training dependencies (torchmetrics, datasets), so the
source of `MMLU.doc_to_text` is read from the wheel, compiled on its own (it needs only `re`) and called on a
small object that carries what the method reads from `self`: `current_prompt` (None for 0-shot, "inst+5" for
OLMES's 5-shot prompt), `mc_labels` (False: the cloze form) and `dev_set` (subject -> dev rows). The
continuations are OLMES's `doc_to_continuations` for the cloze form: " " + choice.
"""
import ast, re, zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WHEEL = ROOT / "vendor-data" / "wheels" / "ai2_olmo_eval-0.9.0-py3-none-any.whl"


def _load_doc_to_text():
    source = zipfile.ZipFile(WHEEL).read("olmo_eval/tasks.py").decode("utf-8")
    tree = ast.parse(source)
    mmlu = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "MMLU")
    method = next(n for n in mmlu.body if isinstance(n, ast.FunctionDef) and n.name == "doc_to_text")
    namespace = {"re": re}
    exec(compile(ast.Module(body=[method], type_ignores=[]), "olmo_eval/tasks.py", "exec"), namespace)
    return namespace["doc_to_text"]


_DOC_TO_TEXT = _load_doc_to_text()


class _MMLUPrompt:
    def __init__(self, shots, dev_rows_by_subject):
        if shots not in (0, 5):
            raise ValueError(f"MMLU shots {shots}: OLMES's prompts are 0-shot (None) or 5-shot ('inst+5')")
        self.current_prompt = None if shots == 0 else "inst+5"
        self.mc_labels = False
        self.dev_set = dev_rows_by_subject


def mmlu_context(doc, shots, dev_rows_by_subject):
    """OLMES's context for one MMLU row (a dict with question, subject, choices, answer)."""
    return _DOC_TO_TEXT(_MMLUPrompt(shots, dev_rows_by_subject), doc)


def mmlu_continuations(doc):
    return [" " + choice for choice in doc["choices"]]
