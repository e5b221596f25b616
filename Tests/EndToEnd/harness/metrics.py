"""Reading what flagwatch (or Prometheus) serves.

  metric_samples(text)        the Prometheus text format as {"name{labels}": value}
  flag_counts(samples)        {(upstream_cluster, response_flag): count} from metric_samples
  parse_exposition(body)      [(name, labels, value)] of a text 0.0.4 / OpenMetrics body
  select / by                 one metric's samples / summed by label values
  check_metrics_text(body)    a line-by-line validator of the text / OpenMetrics format
"""
import re

ACCEPT_PROMETHEUS = "text/plain;version=0.0.4;q=1.0"
ACCEPT_OPENMETRICS = "application/openmetrics-text;version=1.0.0"
# What Prometheus 2.x sends by default (scrape.scrapeAcceptHeader).
ACCEPT_PROMETHEUS_DEFAULT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                             "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")

_SIMPLE_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)(?: \S+)?$")


def metric_samples(text):
    """{"name{labels}": value} for every sample line of a Prometheus text page."""
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = _SIMPLE_SAMPLE.match(line)
        if match:
            samples[match.group(1)] = float(match.group(2))
    return samples


def flag_counts(samples, metric="flagwatch_response_flags_total"):
    """{(upstream_cluster, response_flag): count} from metric_samples' result, zeros left out."""
    label = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
    counts = {}
    for key, value in samples.items():
        if not key.startswith(metric + "{") or value == 0:
            continue
        labels = dict(label.findall(key[len(metric):]))
        pair = (labels.get("upstream_cluster"), labels.get("response_flag"))
        counts[pair] = counts.get(pair, 0) + int(value)
    return counts


# --------------------------------------------------------------------------- exposition parsing

_EXPOSITION_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$')
_EXPOSITION_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def _unescape(value):
    return re.sub(r'\\(.)', lambda m: {"n": "\n", "\\": "\\", '"': '"'}.get(m.group(1), "\\" + m.group(1)), value)


def parse_labels(text):
    labels = {}
    pos = 0
    while pos < len(text):
        m = _EXPOSITION_LABEL.match(text, pos)
        if not m:
            raise ValueError("bad label block {%s} at %d" % (text, pos))
        labels[m.group(1)] = _unescape(m.group(2))
        pos = m.end()
    return labels


def parse_exposition(body):
    """[(name, labels, value)] from a text 0.0.4 or OpenMetrics body; comments skipped. Raises
    ValueError on a line that is neither."""
    samples = []
    for line in body.decode("utf-8").split("\n"):
        if not line or line.startswith("#"):
            continue
        m = _EXPOSITION_SAMPLE.match(line)
        if not m:
            raise ValueError("not a sample line: %r" % line)
        samples.append((m.group(1), parse_labels(m.group(3) or ""), float(m.group(4))))
    return samples


def select(samples, name, **match):
    """Samples of one metric whose labels include `match`."""
    return [(labels, value) for n, labels, value in samples
            if n == name and all(labels.get(k) == v for k, v in match.items())]


def by(samples, name, *keys, **match):
    """{(label values of keys...): value} for one metric (summing duplicates)."""
    out = {}
    for labels, value in select(samples, name, **match):
        key = tuple(labels.get(k, "") for k in keys)
        out[key] = out.get(key, 0) + value
    return out


# --------------------------------------------------------------------------- strict validator

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
_VALUE = r"(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?)|[+-]?Inf|NaN)"
SAMPLE = re.compile(r"^(%s)(?:\{(?:%s(?:,%s)*)?,?\})? %s(?: -?[0-9]+(?:\.[0-9]+)?)?$" % (_NAME, _LABEL, _LABEL, _VALUE))
HELP = re.compile(r"^# HELP (%s) .*$" % _NAME)
TYPE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped|unknown|info|stateset|gaugehistogram)$" % _NAME)
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def check_metrics_text(body, openmetrics=False, lines_total=None):
    """Every line is a HELP, a TYPE or a sample; the self-metrics are there. Returns the samples
    as {series: value-text}. Raises AssertionError with the offending line."""
    assert isinstance(body, (bytes, bytearray)), type(body)
    text = bytes(body).decode("utf-8")
    assert text.endswith("\n"), "metrics text does not end with a newline: %r" % text[-80:]
    lines = text.split("\n")[:-1]
    if openmetrics:
        assert lines and lines[-1] == "# EOF", "OpenMetrics text without '# EOF' at the end: %r" % lines[-3:]
        lines = lines[:-1]
    samples = {}
    for number, line in enumerate(lines, 1):
        if line.startswith("#"):
            assert HELP.match(line) or TYPE.match(line), "line %d is neither HELP nor TYPE: %r" % (number, line)
            continue
        assert SAMPLE.match(line), "line %d is not a sample: %r" % (number, line)
        series, value = line.rsplit(" ", 1)
        samples[series] = value
    assert any(s.startswith("flagwatch_lines_total") for s in samples), "no flagwatch_lines_total sample"
    if lines_total is not None:
        assert float(samples.get('flagwatch_lines_total{source="envoy"}', "nan")) == lines_total, (
            "flagwatch_lines_total{source=\"envoy\"} is %s, expected %d"
            % (samples.get('flagwatch_lines_total{source="envoy"}'), lines_total))
    return samples

