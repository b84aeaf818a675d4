--- Starting the server over stdio, or connecting to a running one over TCP.

local config = require('ouzel.config')

local M = {}

--- `cmd` of the LSP config: TCP when `vim.g.ouzel.port` is set, else `ouzel serve` on stdio.
--- @param dispatchers vim.lsp.rpc.Dispatchers
--- @param client_config vim.lsp.ClientConfig
--- @return vim.lsp.rpc.PublicClient
function M.start(dispatchers, client_config)
  local host, port = config.tcp_address()
  if host and port then
    local rpc = vim.lsp.rpc.connect(host, port)(dispatchers)
    rpc.ouzel_transport = ('tcp %s:%d'):format(host, port)
    return rpc
  end
  local cmd, origin = config.server_command()
  if not cmd then
    -- vim.lsp.start reports this error once per attempt with vim.notify.
    error('ouzel: cannot start the server: ' .. origin, 0)
  end
  local rpc = vim.lsp.rpc.start(cmd, dispatchers, {
    cwd = client_config.cmd_cwd,
    env = client_config.cmd_env,
    detached = client_config.detached,
  })
  rpc.ouzel_transport = 'stdio: ' .. table.concat(cmd, ' ')
  return rpc
end

--- How a client talks to its server ("stdio: …", "tcp host:port", or "custom cmd").
--- @param client vim.lsp.Client
--- @return string
function M.describe(client)
  return client.rpc and client.rpc.ouzel_transport or 'custom cmd'
end

return M
