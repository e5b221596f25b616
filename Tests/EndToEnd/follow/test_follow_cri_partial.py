"""CRI partial records across separate writes and reads (--container-format cri). containerd
and CRI-O cut long lines into `P` records ended by an `F` record; flagwatch joins them into one
logical line. Here the P and F records arrive in separate writes with pauses of several
intervals between them (so flagwatch reads them separately), and a CRI record itself can arrive
in two pieces. Contract: the logical line is counted once, whole, when its F record's newline
arrives, and not before.
"""
import random

import pytest

pytestmark = pytest.mark.follow


def start(fw, log):
    return fw.start("--container-format", "cri", files=[log])


def content_chunks(line, n):
    content = line.rstrip(b"\n")
    step = -(-len(content) // n)
    return [content[i : i + step] for i in range(0, len(content), step)]


def test_p_and_f_records_in_separate_writes(fw):
    log = fw.tmp / "0.log"
    log.write_bytes(b"")
    flagwatch = start(fw, log)
    fw.append(log, fw.cri(fw.traffic.lines(10)))
    flagwatch.wait_counts(fw.traffic.expected())

    for outcome, pieces in [("URX,UF", 2), ("UH", 3)]:
        (line,) = fw.traffic.make(1, outcome=outcome)
        chunks = content_chunks(line, pieces)
        for chunk in chunks[:-1]:
            fw.append(log, fw.cri_record(chunk, b"P"))
            flagwatch.hold(fw.traffic.expected(), n=3, what="no count before the F record")
        fw.append(log, fw.cri_record(chunks[-1], b"F"))
        fw.traffic.record([line])
        flagwatch.wait_counts(fw.traffic.expected(), what="the joined line counted once")
    flagwatch.finish(fw.traffic.expected())


def test_cri_record_split_across_writes(fw):
    log = fw.tmp / "0.log"
    log.write_bytes(b"")
    flagwatch = start(fw, log)
    (line,) = fw.traffic.make(1, outcome="UF,URX")
    chunks = content_chunks(line, 2)
    p_record = fw.cri_record(chunks[0], b"P")
    f_record = fw.cri_record(chunks[1], b"F")
    # The P record in two pieces, then the F record in two pieces.
    for piece in [p_record[:20], p_record[20:], f_record[:45]]:
        fw.append(log, piece)
        flagwatch.hold(fw.traffic.expected(), n=3, what="no count before the F record's newline")
    fw.append(log, f_record[45:])
    fw.traffic.record([line])
    flagwatch.wait_counts(fw.traffic.expected())
    flagwatch.finish(fw.traffic.expected())


def test_many_split_lines_in_random_sized_writes(fw):
    log = fw.tmp / "0.log"
    log.write_bytes(b"")
    flagwatch = start(fw, log)
    rng = random.Random(7)
    data = fw.cri(fw.traffic.lines(250), split_every=61)
    position, writes = 0, 0
    while position < len(data):
        size = rng.randrange(1, 900)
        fw.append(log, data[position : position + size])
        position += size
        writes += 1
        if writes % 40 == 0:
            flagwatch.wait_more(1)  # let flagwatch read in between
    flagwatch.finish(fw.traffic.expected())
