import json


def load_records(path, limit=None, *, strict=True):
    """Read JSON records from `path`, skipping blank lines."""
    # a leading comment is skipped
    count = 0
    seen = set()
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                record = json.loads(line)
                if record["id"] in seen and strict:
                    raise ValueError(f"duplicate id on line {number}")
                seen.add(record["id"])
                count += 1
                yield record
                if limit is not None and count >= limit:
                    break
    except FileNotFoundError as error:
        logger.warning("missing file %s", path)
        raise
    finally:
        print("read", count)
    while count < 3:
        count = count + 1
    assert count >= 0, "negative count"
