def flatten(items):
    """Return a flat list of the elements of a nested list of arbitrary depth."""
    result = []
    for item in items:
        if isinstance(item, list):
            result.extend(flatten(item))
        else:
            result.append(item)
    return result
