-- kapi mcp: kapi's recipes as tools for AI assistants, over the Model
-- Context Protocol on standard input and output (docs/mcp.md).
local M = {summary = "Serve the recipes as tools for AI assistants (Model Context Protocol, stdio)"}

M.description = [[
Speaks MCP (JSON-RPC 2.0, one message a line; protocol revisions
2025-11-25, 2025-06-18 and 2025-03-26) on standard input and output:
each recipe is a tool, and kapi_api sends one raw request. Tools that
change state do nothing without apply = true. Notes go to stderr; stdout
carries protocol messages only. See docs/mcp.md for a host's
configuration.]]

function M.arguments(parser)
  local _ = parser
end

function M.run()
  return require("kapi.mcp").serve()
end

return M
