"""modules.infotext: SDNext's generation-parameters text, quoted and parsed (pure Python).

Format: ``<prompt>\\nNegative prompt: <neg>[\\nTemplate: ...]\\n<key: value, key: value...>``.
Values holding ',', ':' or a newline are JSON-quoted. ``parse`` returns the parameters with
numbers and booleans converted, ``Prompt``/``Negative prompt`` keys, and ``<key>-1``/``<key>-2``
next to every ``WxH`` value."""
import json
import re

re_size = re.compile(r"^(\d+)x(\d+)$")
# "Key words: value," where value is a JSON string (escapes allowed) or runs to the next comma
re_param = re.compile(r'\s*([\w ]+):\s*("(?:\\"[^,]|\\"|\\|[^\"])+"|[^,]*)(?:,|$)')
re_lora = re.compile("<lora:([^:]+):")

_FIRST_PARAMS = ('steps: ', 'seed: ', 'width: ', 'height: ', 'sampler: ', 'size: ', 'cfg scale: ', 'pipeline: ')
_PROMPT_FIELDS = ('negative prompt: ', 'template: ', 'negative template: ')


def quote(text):
    s = str(text)
    if ',' in s or '\n' in s or ':' in s:
        return json.dumps(text, ensure_ascii=False)
    return text


def unquote(text):
    if text is None:
        return ''
    if not text or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _take(keyword, text):
    """Cut the field ``keyword`` (the prompt when empty) off the front of ``text``."""
    lower = text.lower()
    if keyword not in lower:
        return '', text
    if lower.startswith(f'{keyword}:'):
        text = text[len(keyword) + 1:]
    text = text.strip("\n").strip()
    lower = text.lower()
    starts = [lower.find(marker) for marker in _FIRST_PARAMS + _PROMPT_FIELDS if marker in lower]
    end = min(starts) if starts else 0
    value = text[:end]
    text = text.replace(value, '')
    return value.strip("\n").strip(), text


def parse(infotext):
    if not isinstance(infotext, str) or not infotext.strip():
        return {}
    rest = infotext.replace('\nSteps:', ' Steps:')
    prompt, rest = _take('', rest)
    negative, rest = _take('negative prompt', rest)
    template, rest = _take('template', rest)
    negative_template, rest = _take('negative template', rest)
    params = dict(re_param.findall(rest))
    if not params:
        return {'Prompt': infotext}
    params['Prompt'] = prompt or None
    params['Negative prompt'] = negative or None
    if template and template != params['Prompt']:
        params['Template'] = template
    if negative_template and negative_template != params['Negative prompt']:
        params['Negative template'] = negative_template
    for key, raw in list(params.items()):
        value = unquote(raw).strip(" ,\n").replace('\\\n', '')
        size = re_size.match(value)
        if value.replace('.', '', 1).isdigit():
            params[key] = float(value) if '.' in value else int(value)
        elif value in ("True", "False"):
            params[key] = value == "True"
        elif key == 'VAE' and value == 'TAESD':
            params["VAE type"] = 'Tiny'
        elif size is not None:
            params[f"{key}-1"] = int(size.group(1))
            params[f"{key}-2"] = int(size.group(2))
        elif isinstance(params[key], str):
            params[key] = value
    return params
