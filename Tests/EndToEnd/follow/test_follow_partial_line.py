"""A line written in pieces with pauses between them (as a buffered writer flushing mid-line
does). Contract: a line without its newline is not counted until the newline arrives, and then
it is counted once, whole: split inside the flags field `URX,UF`, the pieces would count as
malformed lines or wrong flags.
"""
import pytest

pytestmark = pytest.mark.follow


def cuts_for(line):
    flags_at = line.index(b" URX,UF ") + 4   # between "URX," and "UF"
    return {
        "inside_flags": [flags_at],
        "before_newline": [len(line) - 1],
        "after_first_byte": [1],
        "three_pieces": [len(line) // 3, 2 * len(line) // 3],
    }


def test_line_written_in_pieces(fw):
    log = fw.tmp / "app.log"
    log.write_bytes(b"")
    flagwatch = fw.start(files=[log])
    fw.append(log, fw.traffic.lines(20))
    flagwatch.wait_counts(fw.traffic.expected())

    for name in ["inside_flags", "before_newline", "after_first_byte", "three_pieces"]:
        (line,) = fw.traffic.make(1, service="ledger", outcome="URX,UF")
        cuts = cuts_for(line)[name]
        pieces = [line[a:b] for a, b in zip([0] + cuts, cuts + [len(line)])]
        for piece in pieces[:-1]:
            fw.append(log, piece)
            flagwatch.hold(fw.traffic.expected(), n=3, what="no count for the unfinished line (%s)" % name)
        fw.append(log, pieces[-1])
        fw.traffic.record([line])
        flagwatch.wait_counts(fw.traffic.expected(), what="the line finished (%s), counted once" % name)

    # Whole lines and an unfinished one in the same write: only the whole ones count.
    whole = fw.traffic.lines(5)
    (line,) = fw.traffic.make(1, service="payments", outcome="UF")
    fw.append(log, whole + line[:100])
    flagwatch.hold(fw.traffic.expected(), n=3)
    fw.append(log, line[100:])
    fw.traffic.record([line])
    flagwatch.finish(fw.traffic.expected())
