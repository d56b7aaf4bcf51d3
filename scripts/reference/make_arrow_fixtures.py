#!/usr/bin/env python3
"""Writes the small Arrow IPC stream fixtures of the Arrow reader and MMLU tests, with pyarrow.

    python3 scripts/reference/make_arrow_fixtures.py

Tests/ModelFilesTests/Fixtures/arrow/ (ArrowStreamTests):
  types.arrow       every type the reader decodes (Utf8 with nulls and non-ASCII text, LargeUtf8, Int32 with nulls,
                    Int64, List<Utf8> with a null list, a null element and an empty list, LargeList<LargeUtf8>), in
                    three record batches, the second empty; types.json holds the values pyarrow wrote and byte
                    landmarks for the hostile-input tests (found by the small FlatBuffers walker below, which
                    reads the metadata independently of the Swift reader)
  legacy.arrow      the same table in the pre-0.15 framing (no 0xFFFFFFFF continuation marker)
  mmlu_like.arrow   MMLU's schema and Hugging Face metadata: question, subject, choices list<string>, answer int64
  compressed.arrow  zstd-compressed bodies (must be refused)
  dictionary.arrow  a dictionary-encoded column (must be refused)
  float.arrow       a float64 column (must be refused)
  uint8.arrow       an unsigned 8-bit column (must be refused)
  nested.arrow      list<list<string>> (must be refused)

Tests/EvaluationTests/Fixtures/mmlu/ (MMLUTests): mmlu/<subject>/{dev,test}.arrow for two subjects (6 dev rows, so
the first 5 are taken; questions with surrounding whitespace Python strips), and expected.json with every test
question's context for 0 and 5 shots and its continuations, made by OLMES's own MMLU.doc_to_text (olmes_mmlu.py).
Tests/EvaluationTests/Fixtures/mmlu_bad/: files whose second row is invalid (answer out of range, null question,
null choice, one choice) and one whose answer column is a string.
"""
import json, struct
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from olmes_mmlu import mmlu_context, mmlu_continuations

ROOT = Path(__file__).resolve().parents[2]
ARROW = ROOT / "Tests" / "ModelFilesTests" / "Fixtures" / "arrow"
MMLU = ROOT / "Tests" / "EvaluationTests" / "Fixtures" / "mmlu"
MMLU_BAD = ROOT / "Tests" / "EvaluationTests" / "Fixtures" / "mmlu_bad"

HF_METADATA = {b"huggingface": json.dumps({"info": {"features": {
    "question": {"dtype": "string", "_type": "Value"}, "subject": {"dtype": "string", "_type": "Value"},
    "choices": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"},
    "answer": {"names": ["A", "B", "C", "D"], "_type": "ClassLabel"}}}}).encode()}
MMLU_SCHEMA = pa.schema([("question", pa.string()), ("subject", pa.string()), ("choices", pa.list_(pa.string())),
                         ("answer", pa.int64())], metadata=HF_METADATA)


def write_stream(path, schema, batches, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    with pa.OSFile(str(path), "wb") as sink, ipc.new_stream(sink, schema, options=ipc.IpcWriteOptions(**options)) as w:
        for b in batches:
            w.write_batch(b)


# --- a minimal FlatBuffers walker, only to locate bytes for the hostile-input tests ---

def u16(b, p): return struct.unpack_from("<H", b, p)[0]
def u32(b, p): return struct.unpack_from("<I", b, p)[0]
def i32(b, p): return struct.unpack_from("<i", b, p)[0]


def field_pos(b, table, slot):
    vt = table - i32(b, table)
    if 4 + 2 * slot >= u16(b, vt):
        return None
    off = u16(b, vt + 4 + 2 * slot)
    return table + off if off else None


def deref(b, p): return p + u32(b, p)


def messages(b):
    """(message start, metadata start, metadata length, Message table, body start) for every message."""
    out, pos = [], 0
    while pos < len(b):
        start = pos
        n = i32(b, pos); pos += 4
        if n == -1:
            n = i32(b, pos); pos += 4
        if n == 0:
            break
        meta = pos
        msg = meta + u32(b, meta)
        body_len = struct.unpack_from("<q", b, field_pos(b, msg, 3))[0] if field_pos(b, msg, 3) else 0
        out.append((start, meta, n, msg, meta + n))
        pos = meta + n + body_len
    return out


def landmarks(path):
    b = path.read_bytes()
    msgs = messages(b)
    schema_msg, batch_msg = msgs[0], msgs[1]
    schema = deref(b, field_pos(b, schema_msg[3], 2))
    fields = deref(b, field_pos(b, schema, 1))
    first_field = deref(b, fields + 4)
    batch = deref(b, field_pos(b, batch_msg[3], 2))
    nodes = deref(b, field_pos(b, batch, 1))
    buffers = deref(b, field_pos(b, batch, 2))
    body = batch_msg[4]
    # Column 0 is Utf8: buffers 0 (validity), 1 (offsets), 2 (data).
    offsets_buffer = struct.unpack_from("<q", b, buffers + 4 + 16 * 1)[0]
    data_buffer = struct.unpack_from("<q", b, buffers + 4 + 16 * 2)[0]
    return {
        "file_size": len(b),
        "message_count": len(msgs),
        "schema_message_start": schema_msg[0],
        "batch_message_start": batch_msg[0],
        "batch_metadata_length_at": batch_msg[0] + 4,
        "batch_body_length_at": field_pos(b, batch_msg[3], 3),
        "batch_body_start": body,
        "first_field_type_tag_at": field_pos(b, first_field, 2),
        "nodes_at": nodes + 4,
        "buffers_at": buffers + 4,
        "column0_offsets_at": body + offsets_buffer,
        "column0_data_at": body + data_buffer,
        "batch_message_end": msgs[2][0],
    }


def main():
    # types.arrow
    schema = pa.schema([
        pa.field("text", pa.string()), pa.field("large_text", pa.large_string(), nullable=False),
        pa.field("small", pa.int32()), pa.field("big", pa.int64()),
        pa.field("words", pa.list_(pa.string())), pa.field("large_words", pa.large_list(pa.large_string())),
    ])
    rows = [
        {"text": "héllo ✓", "large_text": "a", "small": 1, "big": -(2**40), "words": ["x", "yz"], "large_words": ["p"]},
        {"text": None, "large_text": "", "small": None, "big": 0, "words": None, "large_words": []},
        {"text": "", "large_text": "ccc", "small": -7, "big": 2**62, "words": [], "large_words": ["q", "r"]},
        {"text": "line\nbreak", "large_text": "dd", "small": 2147483647, "big": 5, "words": [None, "w"], "large_words": None},
        {"text": "last", "large_text": "é", "small": 3, "big": -1, "words": ["v"], "large_words": ["s"]},
    ]
    def batch(rs):
        return pa.RecordBatch.from_pylist(rs, schema=schema)
    batches = [batch(rows[:3]), batch([]), batch(rows[3:])]
    write_stream(ARROW / "types.arrow", schema, batches)
    write_stream(ARROW / "legacy.arrow", schema, batches, use_legacy_format=True)
    expected = {"columns": {f.name: [r[f.name] for r in rows] for f in schema},
                "types": {f.name: str(f.type) for f in schema}, "rows": len(rows), "record_batches": len(batches),
                "landmarks": landmarks(ARROW / "types.arrow")}
    (ARROW / "types.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")

    mmlu_rows = [{"question": "What is 1+1?", "subject": "anatomy", "choices": ["1", "2", "3", "4"], "answer": 1}]
    write_stream(ARROW / "mmlu_like.arrow", MMLU_SCHEMA, [pa.RecordBatch.from_pylist(mmlu_rows, schema=MMLU_SCHEMA)])
    write_stream(ARROW / "compressed.arrow", MMLU_SCHEMA, [pa.RecordBatch.from_pylist(mmlu_rows, schema=MMLU_SCHEMA)],
                 compression="zstd")
    dict_schema = pa.schema([("label", pa.dictionary(pa.int32(), pa.string()))])
    write_stream(ARROW / "dictionary.arrow", dict_schema,
                 [pa.RecordBatch.from_arrays([pa.array(["a", "b", "a"]).dictionary_encode()], schema=dict_schema)])
    for name, t, values in [("float", pa.float64(), [1.5]), ("uint8", pa.uint8(), [3]),
                            ("nested", pa.list_(pa.list_(pa.string())), [[["a"]]])]:
        s = pa.schema([("value", t)])
        write_stream(ARROW / f"{name}.arrow", s, [pa.RecordBatch.from_arrays([pa.array(values, type=t)], schema=s)])

    # MMLU fixture: two subjects.
    subjects = {
        "anatomy": {
            "dev": [{"question": f"Dev question {i}?", "subject": "anatomy", "choices": [f"a{i}", f"b{i}", f"c{i}", f"d{i}"],
                     "answer": i % 4} for i in range(6)],
            "test": [
                {"question": "  Which bone is longest?\n", "subject": "anatomy", "choices": ["Femur", "Tibia", "Ulna", "Rib"], "answer": 0},
                {"question": "\x1cWhere is the hyoid?\u2003", "subject": "anatomy", "choices": ["Neck", " Head", "Foot", "Hand"], "answer": 0},
            ],
        },
        "high_school_us_history": {
            "dev": [{"question": f"History {i}: when?", "subject": "high_school_us_history", "choices": ["1776", "1812", "1865", "1945"],
                     "answer": (i + 1) % 4} for i in range(5)],
            "test": [{"question": "Who wrote “Common Sense”?", "subject": "high_school_us_history",
                      "choices": ["Paine", "Adams", "Jefferson", "Franklin"], "answer": 0}],
        },
    }
    out = []
    for subject, splits in subjects.items():
        for split, rs in splits.items():
            # The test split is written in two record batches, as professional_law's real file is.
            bs = [pa.RecordBatch.from_pylist(rs[:1], schema=MMLU_SCHEMA), pa.RecordBatch.from_pylist(rs[1:], schema=MMLU_SCHEMA)] \
                if split == "test" and len(rs) > 1 else [pa.RecordBatch.from_pylist(rs, schema=MMLU_SCHEMA)]
            write_stream(MMLU / subject / f"{split}.arrow", MMLU_SCHEMA, bs)
        dev = {subject: splits["dev"]}
        for row, doc in enumerate(splits["test"]):
            out.append({"native_id": f"{subject}/{row}", "gold": doc["answer"], "continuations": mmlu_continuations(doc),
                        "context_0shot": mmlu_context(doc, 0, dev), "context_5shot": mmlu_context(doc, 5, dev)})
    # Rows the MMLU loader must reject, each naming the row and the column.
    good = {"question": "Q?", "subject": "anatomy", "choices": ["a", "b", "c", "d"], "answer": 0}
    for name, bad in [("answer_out_of_range", {"answer": 4}), ("null_question", {"question": None}),
                      ("null_choice", {"choices": ["a", None, "c", "d"]}), ("one_choice", {"choices": ["a"]})]:
        write_stream(MMLU_BAD / f"{name}.arrow", MMLU_SCHEMA, [pa.RecordBatch.from_pylist([good, {**good, **bad}], schema=MMLU_SCHEMA)])
    string_answer = pa.schema([("question", pa.string()), ("subject", pa.string()), ("choices", pa.list_(pa.string())),
                               ("answer", pa.string())])
    write_stream(MMLU_BAD / "string_answer.arrow", string_answer,
                 [pa.RecordBatch.from_pylist([{**good, "answer": "A"}], schema=string_answer)])

    (MMLU / "expected.json").write_text(json.dumps({"subjects": list(subjects), "items": out}, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {ARROW} and {MMLU}")


if __name__ == "__main__":
    main()
