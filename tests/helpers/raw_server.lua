-- A server on loopback that answers with bytes given as they are, for the
-- answers no HTTP server would send (kapi.server cannot): connection i
-- gets answers[(i - 1) % #answers + 1] once its request head has come,
-- then is closed. A perl process (perl-base is in every Debian system);
-- stop() ends it, and it ends itself after a minute.
local process = require "helpers.process"

local M = {}

local SCRIPT = [[
use strict;
use IO::Socket::INET;
alarm 60;
my $dir = shift;
my @answers;
for my $file (@ARGV) {
  open(my $f, '<:raw', $file) or die "$file: $!";
  local $/;
  push @answers, scalar <$f>;
  close $f;
}
my $server = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 16, ReuseAddr => 1)
  or die "listen: $!";
open(my $p, '>', "$dir/port.tmp") or die;
print $p $server->sockport;
close $p;
rename "$dir/port.tmp", "$dir/port";
for (my $i = 0; my $c = $server->accept; $i++) {
  my $head = '';
  while ($head !~ /\r?\n\r?\n/) {
    my $n = sysread($c, my $chunk, 65536);
    last unless $n;
    $head .= $chunk;
  }
  syswrite($c, $answers[$i % @answers]);
  close $c;
}
]]

--- start{answer, ...} -> {url, stop = fn}
function M.start(answers)
  local dir = process.tempdir()
  local files = {}
  for i, answer in ipairs(answers) do
    files[i] = process.quote(process.write(("%s/answer%d"):format(dir, i), answer))
  end
  process.write(dir .. "/server.pl", SCRIPT)
  os.execute(("perl %s/server.pl %s %s > /dev/null 2> %s/err & echo $! > %s/pid")
             :format(dir, dir, table.concat(files, " "), dir, dir))
  local port = process.first_line_of(dir .. "/port")
  local pid = io.open(dir .. "/pid"):read("l")
  local function stop()
    os.execute("kill " .. pid .. " 2>/dev/null; wait " .. pid .. " 2>/dev/null")
    process.cleanup(dir)
  end
  if not port then stop(); error("the raw server did not start", 2) end
  return {url = "http://127.0.0.1:" .. port .. "/", stop = stop}
end

return M
