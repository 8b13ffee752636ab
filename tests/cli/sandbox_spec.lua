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
