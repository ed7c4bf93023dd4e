public static function slugify($text, $sep = '-')
{
    $text = preg_replace('~[^\pL\d]+~u', $sep, $text);
    if (empty($text)) {
        return 'n-a';
    }
    foreach ($this->filters as $name => $filter) {
        $text = $filter->apply($text);
        $this->applied[] = $name;
    }
    try {
        $text = iconv('utf-8', 'us-ascii//TRANSLIT', $text);
    } catch (Exception $e) {
        throw new InvalidArgumentException("cannot transliterate");
    }
    return strtolower(trim($text, $sep));
}
