"""When a partition splits, and where: the pure decision behind splits.

Paper: partitions split by size and by consumption, and "the split point in
the key range is chosen based on the key distribution the partition has
experienced", not the midpoint, so that heavy items end up on different
partitions. This module decides; the control plane (issue 4) carries a split
out. It never touches a clock, a socket or a file: callers feed it what a
partition's leader observed and the time as numbers.

Observations. An `AccessSketch` summarises one partition's recent traffic
over its hash range [start, end) in bounded memory:
- BUCKETS_MAX equal-width buckets of consumed capacity units, which locate
  where in the range the load is;
- the heaviest individual key hashes (Misra-Gries summary, HEAVY_KEYS_MAX
  counters), because one hot item inside a bucket is invisible to buckets
  and the split must go right next to it to isolate it;
- `decay()` ages everything by a factor once per window, so the sketch
  follows the current traffic, not the table's history.
The same sketch weighted by stored bytes instead of units gives the size
split point.

Decision. `split_reason` says "size" when the partition holds more than
SIZE_BYTES_MAX, "consumption" when it consumed more than HOT_FRACTION of a
partition's read or write capacity (3,000 RCU / 1,000 WCU) in each of the
last HOT_WINDOWS windows ("keeps running hot"), else None.
`choose_split_point` returns the hash that divides the observed load most
evenly; the candidates are bucket edges and the positions right before and
right after each heavy key. It returns None when no cut gives each side at
least MIN_SIDE_SHARE of the load (all the load on a single key: splitting
cannot help, and DynamoDB does not split then either).
"""
from __future__ import annotations

from dataclasses import dataclass, field

READ_UNITS_PER_PARTITION = 3_000
WRITE_UNITS_PER_PARTITION = 1_000
SIZE_BYTES_MAX = 10 * 1000 ** 3  # "about 10 GB" per partition
HOT_FRACTION = 0.8
HOT_WINDOWS = 3
BUCKETS_MAX = 256
HEAVY_KEYS_MAX = 16
MIN_SIDE_SHARE = 0.1


@dataclass
class AccessSketch:
    """Bounded summary of where in [start, end) a partition's load falls."""
    start: int
    end: int
    buckets: int = 64
    counts: list[float] = field(default_factory=list)
    heavy: dict[int, float] = field(default_factory=dict)  # key hash -> estimated units

    def __post_init__(self) -> None:
        assert 0 <= self.start < self.end, (self.start, self.end)
        assert 1 <= self.buckets <= BUCKETS_MAX, self.buckets
        self.buckets = min(self.buckets, self.end - self.start)
        if not self.counts:
            self.counts = [0.0] * self.buckets
        assert len(self.counts) == self.buckets

    @property
    def total(self) -> float:
        return sum(self.counts)

    def bucket_of(self, key_hash: int) -> int:
        assert self.start <= key_hash < self.end, (key_hash, self.start, self.end)
        return (key_hash - self.start) * self.buckets // (self.end - self.start)

    def bucket_start(self, bucket: int) -> int:
        return self.start + (self.end - self.start) * bucket // self.buckets

    def record(self, key_hash: int, units: float) -> None:
        assert units >= 0, units
        self.counts[self.bucket_of(key_hash)] += units
        # Misra-Gries, weighted: an untracked key may take a slot only by
        # lowering every counter, so a tracked key's estimate never exceeds its
        # true load and any key above total/HEAVY_KEYS_MAX is tracked.
        if key_hash in self.heavy or len(self.heavy) < HEAVY_KEYS_MAX:
            self.heavy[key_hash] = self.heavy.get(key_hash, 0.0) + units
            return
        lowest = min(min(self.heavy.values()), units)
        self.heavy = {k: v - lowest for k, v in self.heavy.items() if v - lowest > 0}
        if units - lowest > 0:
            self.heavy[key_hash] = units - lowest

    def decay(self, factor: float) -> None:
        """Age the observations by one window (0 < factor < 1 keeps recent traffic dominant)."""
        assert 0.0 < factor < 1.0, factor
        self.counts = [c * factor for c in self.counts]
        self.heavy = {k: v * factor for k, v in self.heavy.items() if v * factor > 1e-9}


@dataclass(frozen=True)
class WindowUsage:
    """What a partition consumed in one window, in capacity units per second."""
    read_units_per_s: float
    write_units_per_s: float


def split_reason(size_bytes: int, recent: "list[WindowUsage]",
                 size_bytes_max: int = SIZE_BYTES_MAX,
                 read_units_max: float = READ_UNITS_PER_PARTITION,
                 write_units_max: float = WRITE_UNITS_PER_PARTITION) -> str | None:
    """"size", "consumption" or None (see the module docstring; the limits default
    to DynamoDB's per-partition ones)."""
    if size_bytes > size_bytes_max:
        return "size"
    last = list(recent)[-HOT_WINDOWS:]
    if len(last) == HOT_WINDOWS and all(
            w.read_units_per_s > HOT_FRACTION * read_units_max
            or w.write_units_per_s > HOT_FRACTION * write_units_max for w in last):
        return "consumption"
    return None


def choose_split_point(sketch: AccessSketch) -> int | None:
    """The boundary b (start < b < end) that splits the load most evenly, or None.

    The left child gets [start, b), the right child [b, end).
    """
    total = sketch.total
    if total <= 0:
        return None
    candidates = {sketch.bucket_start(b) for b in range(1, sketch.buckets)}
    for key_hash in sketch.heavy:
        candidates.update((key_hash, key_hash + 1))
    candidates = {c for c in candidates if sketch.start < c < sketch.end}
    best: tuple[float, int] | None = None
    for boundary in sorted(candidates):
        left = _load_below(sketch, boundary)
        share = left / total
        if min(share, 1.0 - share) < MIN_SIDE_SHARE:
            continue
        score = abs(0.5 - share)
        if best is None or score < best[0]:
            best = (score, boundary)
    return None if best is None else best[1]


def _load_below(sketch: AccessSketch, boundary: int) -> float:
    """Estimated load on hashes < boundary: whole buckets, a heavy key's share of
    the bucket cut in two, and the rest of that bucket spread evenly."""
    bucket = sketch.bucket_of(min(boundary, sketch.end - 1)) if boundary < sketch.end else sketch.buckets
    load = sum(sketch.counts[:bucket])
    if bucket >= sketch.buckets:
        return load
    low, high = sketch.bucket_start(bucket), sketch.bucket_start(bucket + 1) if bucket + 1 < sketch.buckets else sketch.end
    if boundary <= low:
        return load
    heavy_in = {k: v for k, v in sketch.heavy.items() if low <= k < high}
    heavy_below = sum(v for k, v in heavy_in.items() if k < boundary)
    rest = max(sketch.counts[bucket] - sum(heavy_in.values()), 0.0)
    return load + heavy_below + rest * (boundary - low) / (high - low)
