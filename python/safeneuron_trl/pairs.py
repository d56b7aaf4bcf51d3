"""Preference pairs as `safeneuron align` reads, tokenises and truncates them.

Formats (recognised per row, as Sources/Alignment/PreferenceFile.swift does): our/TRL-standard `{prompt, chosen,
rejected}` strings with an optional `system`; TRL's conversational lists of `{role, content}` messages (with or
without an explicit prompt); PKU-SafeRLHF `{prompt, response_0, response_1, safer_response_id}` (fallback
`better_response_id`). Rows with identical answers are skipped.

Tokenisation is TRL's conversational convention done jointly, as ours: prompt ids = template(prompt) with the
generation prompt, full ids = template(prompt + answer); the completion is the full ids after the prompt ids, and
the full ids must start with the prompt ids. (TRL's own `_prepare_dataset` instead cuts at the common prefix and,
for string data, appends an EOS token; the bridge bypasses it.)

Truncation to max_length (ours, not TRL's keep_start/keep_end): a pair longer than max_length keeps at least one
completion token; the completion is cut at its end first, then the prompt loses tokens from its start.
"""

import json


class PairsFileError(ValueError):
    def __init__(self, where, reason):
        super().__init__(f"{where}: {reason}")


def _typename(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, list):
        return "a list"
    return "an object"


def _string(obj, key):
    if key not in obj:
        raise KeyError(f"field '{key}': missing")
    v = obj[key]
    if not isinstance(v, str):
        raise KeyError(f"field '{key}': expected a string, found {_typename(v)}")
    return v


def _optional_string(obj, key):
    return None if obj.get(key) is None else _string(obj, key)


def _text(content, field):
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise KeyError(f"field '{field}': expected a string or a list of text parts, found {_typename(content)}")
    text = ""
    for j, part in enumerate(content):
        at = f"{field}[{j}]"
        if not isinstance(part, dict):
            raise KeyError(f"field '{at}': expected an object, found {_typename(part)}")
        if part.get("type", "text") != "text":
            raise KeyError(f"field '{at}.type': only text parts are supported, found '{part.get('type')}'")
        if not isinstance(part.get("text"), str):
            raise KeyError(f"field '{at}.text': expected a string, found {_typename(part.get('text'))}")
        text += part["text"]
    return text


def _messages(value, field):
    if not isinstance(value, list):
        raise KeyError(f"field '{field}': expected a list of messages, found {_typename(value)}")
    out = []
    for i, m in enumerate(value):
        at = f"{field}[{i}]"
        if not isinstance(m, dict):
            raise KeyError(f"field '{at}': expected an object, found {_typename(m)}")
        if "role" not in m:
            raise KeyError(f"field '{at}.role': missing")
        role = m["role"]
        if not isinstance(role, str):
            raise KeyError(f"field '{at}.role': expected a string, found {_typename(role)}")
        if role not in ("system", "user", "assistant"):
            raise KeyError(f"field '{at}.role': '{role}' is not system, user or assistant")
        if "content" not in m:
            raise KeyError(f"field '{at}.content': missing")
        out.append({"role": role, "content": _text(m["content"], at + ".content")})
    return out


def parse_row(obj):
    """(format, prompt messages, chosen messages, rejected messages) of one row."""
    if "response_0" in obj or "response_1" in obj:
        prompt = _string(obj, "prompt")
        responses = [_string(obj, "response_0"), _string(obj, "response_1")]
        chosen = None
        for key in ("safer_response_id", "better_response_id"):
            v = obj.get(key)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v not in (0, 1):
                raise KeyError(f"field '{key}': expected 0 or 1, found {v!r}")
            chosen = int(v)
            break
        if chosen is None:
            raise KeyError("field 'safer_response_id': missing (and no 'better_response_id')")
        user = [{"role": "user", "content": prompt}]
        return ("pku-saferlhf", user, [{"role": "assistant", "content": responses[chosen]}],
                [{"role": "assistant", "content": responses[1 - chosen]}])
    if any(isinstance(obj.get(k), list) for k in ("chosen", "rejected", "prompt")):
        if "chosen" not in obj:
            raise KeyError("field 'chosen': missing")
        if "rejected" not in obj:
            raise KeyError("field 'rejected': missing")
        chosen, rejected = _messages(obj["chosen"], "chosen"), _messages(obj["rejected"], "rejected")
        if "prompt" in obj:
            prompt = _messages(obj["prompt"], "prompt")
        else:
            shared = 0
            while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
                shared += 1
            users = [i for i in range(shared) if chosen[i]["role"] == "user"]
            if not users:
                raise KeyError("field 'chosen': no prompt field, and chosen and rejected share no leading user turn")
            last_user = users[-1]
            prompt = chosen[:last_user + 1]
            chosen, rejected = chosen[last_user + 1:], rejected[last_user + 1:]
        if not prompt:
            raise KeyError("field 'prompt': empty conversation")
        if prompt[-1]["role"] != "user":
            raise KeyError(f"field 'prompt[{len(prompt) - 1}].role': the prompt's last turn is "
                           f"'{prompt[-1]['role']}', not the user's")
        for key, turns in (("chosen", chosen), ("rejected", rejected)):
            if not turns:
                raise KeyError(f"field '{key}': no answer after the prompt")
            for i, t in enumerate(turns):
                if t["role"] != "assistant":
                    raise KeyError(f"field '{key}[{i}].role': '{t['role']}' in an answer; every answer turn is the "
                                   "assistant's")
        return "conversational", prompt, chosen, rejected
    if "prompt" not in obj:
        raise KeyError("field 'prompt': missing (string pairs need an explicit prompt; conversational pairs may "
                       "leave it implicit)")
    turns = []
    system = _optional_string(obj, "system")
    if system is not None:
        turns.append({"role": "system", "content": system})
    turns.append({"role": "user", "content": _string(obj, "prompt")})
    return ("standard", turns, [{"role": "assistant", "content": _string(obj, "chosen")}],
            [{"role": "assistant", "content": _string(obj, "rejected")}])


def read_pairs(path):
    """[(line number, prompt, chosen, rejected)] and a one-line summary like the Swift reader's."""
    rows, skipped, formats = [], [], {}
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise PairsFileError(path, f"cannot read: {e.strerror}") from None
    with f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                raise PairsFileError(f"{path}:{number}", "not valid JSON") from None
            if not isinstance(obj, dict):
                raise PairsFileError(f"{path}:{number}", "not a JSON object")
            try:
                fmt, prompt, chosen, rejected = parse_row(obj)
            except KeyError as e:
                raise PairsFileError(f"{path}:{number}", e.args[0]) from None
            if chosen == rejected:
                skipped.append(number)
                continue
            formats[fmt] = formats.get(fmt, 0) + 1
            rows.append((number, prompt, chosen, rejected))
    if not rows:
        raise PairsFileError(path, f"no usable preference pairs ({len(skipped)} skipped)" if skipped
                             else "no preference pairs")
    summary = f"read {len(rows)} preference pairs from {path} (" + ", ".join(
        f"{n} {k}" for k, n in formats.items()) + ")"
    if skipped:
        summary += f"; skipped {len(skipped)}: identical chosen and rejected (lines {', '.join(map(str, skipped[:5]))})"
    return rows, summary


def encode_chat(tokenizer, messages, add_generation_prompt):
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def truncate(prompt_len, full, max_length):
    """(kept prompt ids, kept completion ids) of one full sequence, as DPOTrainer.swift truncates it."""
    completion_len = len(full) - prompt_len
    if max_length is None or len(full) <= max_length:
        return full[:prompt_len], full[prompt_len:]
    if max_length < 2:
        raise ValueError("max length must be ≥ 2")
    keep_completion = max(1, min(completion_len, max_length - prompt_len))
    keep_prompt = min(prompt_len, max_length - keep_completion)
    return full[prompt_len - keep_prompt:prompt_len], full[prompt_len:prompt_len + keep_completion]


def tokenize_pairs(rows, tokenizer, path, max_length, vocab_size):
    """Rows of {prompt_ids, chosen_ids, rejected_ids}, the prompt shared (truncation keeps the same prompt tail
    for both answers: when the prompt fits it is kept whole, otherwise both keep max_length − 1 prompt tokens)."""
    out = []
    for number, prompt, chosen, rejected in rows:
        where = f"{path}:{number}"
        prompt_ids = encode_chat(tokenizer, prompt, True)
        if not prompt_ids:
            raise PairsFileError(where, "empty prompt")
        kept = {}
        for name, answer in (("chosen", chosen), ("rejected", rejected)):
            full = encode_chat(tokenizer, prompt + answer, False)
            if len(full) <= len(prompt_ids) or full[:len(prompt_ids)] != prompt_ids:
                raise PairsFileError(where, f"{name} does not start with the prompt or has no completion after the "
                                            "chat template")
            if any(t < 0 or t >= vocab_size for t in full):
                raise PairsFileError(where, f"{name} has a token outside the vocabulary {vocab_size}")
            kept[name] = truncate(len(prompt_ids), full, max_length)
        if kept["chosen"][0] != kept["rejected"][0]:
            raise PairsFileError(where, "chosen and rejected keep different prompts after truncation")
        out.append({"prompt_ids": kept["chosen"][0], "chosen_ids": kept["chosen"][1],
                    "rejected_ids": kept["rejected"][1]})
    return out
