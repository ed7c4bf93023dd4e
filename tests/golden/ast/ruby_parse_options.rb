def parse_options(args, defaults = {})
  options = defaults.dup
  args.each_with_index do |arg, index|
    next if arg.nil?
    case arg
    when "--verbose", "-v"
      options[:verbose] = true
    when /\A--name=(.+)\z/
      options[:name] = Regexp.last_match(1)
    else
      raise ArgumentError, "unknown option #{arg}" unless options[:lenient]
      warn "ignoring #{arg} at #{index}"
    end
  end
  options[:count] ||= 1
  options
end
