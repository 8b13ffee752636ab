-- `kapi sandbox` as a user runs it: it prints its URL and test
-- credentials, serves, and stops cleanly on Ctrl-C.
local process = require "helpers.process"

describe("kapi sandbox", function()
  it("serves on loopback, prints its URL and credentials, and stops on Ctrl-C", function()
    local dir = process.tempdir()
    local script = ([[
      %s sandbox --products 500 --stores 20 --seed 3 > %s/out 2> %s/err &
      pid=$!
      for i in $(seq 100); do grep -q "^kapi sandbox: http" %s/out 2>/dev/null && break; sleep 0.05; done
      url=$(sed -n 's/^kapi sandbox: //p' %s/out)
      curl -s -u kapi-sandbox:sandbox-secret -d grant_type=client_credentials "$url/v1/connect/oauth2/token"
      echo
      kill -INT $pid
      wait $pid
      echo "exit=$?"
    ]]):format(process.quote(process.kapi), dir, dir, dir, dir)
    local r = process.sh(script)
    local out = io.open(dir .. "/out"):read("a")
    local err = io.open(dir .. "/err"):read("a")
    process.cleanup(dir)
    assert.matches("^kapi sandbox: http://127%.0%.0%.1:%d+\n", out)
    assert.matches("KROGER_CLIENT_ID=kapi%-sandbox KROGER_CLIENT_SECRET=sandbox%-secret", out)
    assert.matches('"access_token":"', r.stdout)
    assert.matches("exit=130", r.stdout) -- interrupted, as every command
    assert.equal("kapi sandbox: stopped\n", err)
  end)

  it("rejects a bad option with status 2", function()
    local r = process.kapi_run {"sandbox", "--tls", "only-one-file"}
    assert.equal(2, r.status)
    assert.matches("^kapi: %-%-tls only%-one%-file: expected CERT,KEY %(two PEM files%)\n$", r.stderr)
  end)
end)

describe("kapi sandbox under a flood of slow and idle connections", function()
  it("still serves a normal request at once, and cuts off a client that never finishes its headers", function()
    local sandbox = process.sandbox {"--products", "100", "--stores", "5"}
    local port = sandbox.url:match(":(%d+)$")
    local r = process.sh("bash -c " .. process.quote(([[
      trap '' PIPE
      P=%s
      # 1,100 connections that send a request line and one header, then nothing
      for i in $(seq 1100); do exec {fd}<>/dev/tcp/127.0.0.1/$P || exit 9; printf 'GET /v1/chains HTTP/1.1\r\nHost: x\r\n' >&$fd; done
      # one that sends a header line every 2 s: never idle, never done (slowloris)
      exec {slow}<>/dev/tcp/127.0.0.1/$P
      printf 'GET /v1/chains HTTP/1.1\r\n' >&$slow
      code=$(curl -s -m 5 -o /dev/null -w '%%{http_code} %%{time_total}' http://127.0.0.1:$P/v1/chains)
      echo "normal: $code"
      for t in 1 2 3 4 5 6 7; do sleep 2; printf 'X-Slow: %%d\r\n' $t >&$slow || break; done
      if timeout 1 cat <&$slow > /dev/null; then echo "slow: closed"; else echo "slow: open"; fi
    ]]):format(port)))
    sandbox.stop()
    assert.equal(0, r.status, r.stderr)
    local code, seconds = r.stdout:match("normal: (%d+) ([%d.]+)")
    assert.equal("401", code) -- answered (no token given), not queued behind the flood
    assert.is_true(tonumber(seconds) < 2, r.stdout)
    assert.matches("slow: closed", r.stdout) -- within 14 s of its request line (the deadline is 10 s)
  end)
end)
