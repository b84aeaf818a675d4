--- Starting the server over stdio, or connecting to a running one over TCP (or TLS).

local config = require('ouzel.config')

local M = {}

--- `cmd` of the LSP config: TCP (TLS with `tls = true`) when `vim.g.ouzel.port` is set, else
--- `ouzel serve` over stdio.
--- @param dispatchers vim.lsp.rpc.Dispatchers
--- @param client_config vim.lsp.ClientConfig
--- @return vim.lsp.rpc.PublicClient
function M.start(dispatchers, client_config)
  local host, port = config.tcp_address()
  if host and port and config.get().tls then
    local rpc = vim.lsp.rpc.start(M.tls_command(host, port), M.explain_tls_failure(dispatchers))
    rpc.ouzel_transport = ('tls %s:%d'):format(host, port)
    return rpc
  end
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

--- TLS without a TLS stack in Neovim: `openssl s_client` carries the stdio stream, and
--- refuses a certificate that does not verify or does not name the host.
--- @param host string
--- @param port integer
--- @return string[]
function M.tls_command(host, port)
  local cmd = {
    'openssl',
    's_client',
    '-quiet',
    '-connect',
    ('%s:%d'):format(host:find(':', 1, true) and ('[' .. host .. ']') or host, port),
    '-verify_return_error',
  }
  local is_ip = host:match('^%d+%.%d+%.%d+%.%d+$') or host:find(':', 1, true)
  if is_ip then
    vim.list_extend(cmd, { '-verify_ip', host })
  else
    vim.list_extend(cmd, { '-verify_hostname', host, '-servername', host })
  end
  local ca = config.get().tls_ca
  if ca then
    vim.list_extend(cmd, { '-CAfile', vim.fs.normalize(ca) })
  end
  return cmd
end

--- openssl's reasons (certificate not trusted, wrong host, refused) go to the LSP log only;
--- say in the editor where to look and what usually fixes it.
--- @param dispatchers vim.lsp.rpc.Dispatchers
--- @return vim.lsp.rpc.Dispatchers
function M.explain_tls_failure(dispatchers)
  local on_exit = dispatchers.on_exit
  return vim.tbl_extend('force', dispatchers, {
    on_exit = function(code, signal)
      if code ~= 0 then
        local host, port = config.tcp_address()
        vim.schedule(function()
          vim.notify(
            (
              'ouzel: the TLS connection to %s:%s failed (openssl exit %d); :LspLog has the '
              .. 'reason. A self-signed certificate needs vim.g.ouzel.tls_ca'
            ):format(host, port, code),
            vim.log.levels.ERROR
          )
        end)
      end
      if on_exit then
        on_exit(code, signal)
      end
    end,
  })
end

--- `before_init` of the LSP config, as each client starts:
--- - the server's settings: `vim.g.ouzel.settings` under what `vim.lsp.config` gave
---   `settings.ouzel` (the client answers `workspace/configuration` from this table);
--- - the token for a remote server in `initializationOptions.authToken` (never over stdio,
---   where it is not needed).
--- @param params lsp.InitializeParams
--- @param client_config vim.lsp.ClientConfig
function M.before_init(params, client_config)
  if type(client_config.settings) == 'table' then
    local explicit = client_config.settings.ouzel
    client_config.settings.ouzel = vim.tbl_deep_extend(
      'force',
      config.get().settings,
      type(explicit) == 'table' and explicit or {}
    )
  end
  local host = config.tcp_address()
  if not host then
    return
  end
  local token, problem = config.token()
  if problem then
    config.warn_once('token', problem)
  end
  if token then
    params.initializationOptions = params.initializationOptions or {}
    params.initializationOptions.authToken = token
  end
end

--- How a client talks to its server ("stdio: …", "tcp host:port", or "custom cmd").
--- @param client vim.lsp.Client
--- @return string
function M.describe(client)
  return client.rpc and client.rpc.ouzel_transport or 'custom cmd'
end

return M
