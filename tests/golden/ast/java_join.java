public static String join(Collection<String> parts, String sep) {
    if (parts == null || parts.isEmpty()) {
        return "";
    }
    StringBuilder sb = new StringBuilder();
    for (String part : parts) {
        if (sb.length() > 0) {
            sb.append(sep);
        }
        sb.append(part);
    }
    try {
        validate(sb);
    } catch (IllegalStateException e) {
        throw new RuntimeException("bad join", e);
    }
    return sb.toString();
}
