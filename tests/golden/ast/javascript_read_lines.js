function readLines(options, callback) {
  var self = this;
  options = options || {};
  if (typeof options === 'function') {
    callback = options;
    options = {};
  }
  fs.readFile(options.path, 'utf8', function (err, data) {
    if (err) return callback(err);
    var lines = data.split('\n');
    lines.forEach(function (line) {
      self.emit('line', line);
    });
    callback(null, lines.length);
  });
}
