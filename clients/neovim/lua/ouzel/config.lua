--- Options of the plugin: `vim.g.ouzel` over the defaults, and how to reach the server.
---
--- Read on every use (cheap), so a change to `vim.g.ouzel` applies to the next request or
--- the next server start without a `setup()` call.

local M = {}

--- @class ouzel.Options
--- @field cmd? string[] command that starts the server over stdio (default: `ouzel serve`)
--- @field host? string TCP host of a running `ouzel serve --tcp` (used when `port` is set)
--- @field port? integer TCP port; set it to connect instead of starting a process
--- @field token_file? string file holding the server's token (else `$OUZEL_TOKEN`), sent over TCP
--- @field tls boolean talk TLS to the TCP server (through `openssl s_client`)
--- @field tls_ca? string CA certificate (PEM) that signed the server's, e.g. a self-signed one
--- @field settings table the server's "ouzel" settings section (see docs/CONFIGURATION.md)
--- @field debounce_ms integer pause after typing before asking for a suggestion
--- @field auto_trigger boolean ask for suggestions while typing (false: only `<Plug>(ouzel-next)`)
--- @field keymaps boolean default insert-mode keys where the user has none
--- @field native boolean use Neovim's own inline completion where it exists (0.12+)
--- @field root_markers string[] files or folders that mark a workspace root

--- @type ouzel.Options
M.defaults = {
  cmd = nil,
  host = '127.0.0.1',
  port = nil,
  token_file = nil,
  tls = false,
  tls_ca = nil,
  settings = {},
  debounce_ms = 50,
  auto_trigger = true,
  keymaps = true,
  native = true,
  root_markers = { '.ouzel', '.git' },
}

local types = {
  cmd = 'table',
  host = 'string',
  port = 'number',
  token_file = 'string',
  tls = 'boolean',
  tls_ca = 'string',
  settings = 'table',
  debounce_ms = 'number',
  auto_trigger = 'boolean',
  keymaps = 'boolean',
  native = 'boolean',
  root_markers = 'table',
}

local reported = {} --- @type table<string, true>

--- The merged options. An option of the wrong type is reported once and replaced by its default.
--- @return ouzel.Options
function M.get()
  local user = vim.g.ouzel
  if user ~= nil and type(user) ~= 'table' then
    M.warn_once('vim.g.ouzel', 'vim.g.ouzel must be a table; using the defaults')
    user = nil
  end
  local options = vim.deepcopy(M.defaults)
  for key, value in pairs(user or {}) do
    local expected = types[key]
    if expected == nil then
      M.warn_once('unknown:' .. key, ('vim.g.ouzel.%s is not an option; ignored'):format(key))
    elseif type(value) ~= expected then
      M.warn_once(
        'type:' .. key,
        ('vim.g.ouzel.%s must be a %s (got %s); using the default'):format(
          key,
          expected,
          type(value)
        )
      )
    else
      options[key] = value
    end
  end
  return options
end

--- @param key string
--- @param message string
function M.warn_once(key, message)
  if reported[key] then
    return
  end
  reported[key] = true
  vim.notify('ouzel: ' .. message, vim.log.levels.WARN)
end

--- The folder this plugin lives in (clients/neovim in an ouzel checkout).
--- @return string
function M.plugin_root()
  local source = debug.getinfo(1, 'S').source:sub(2)
  return vim.fn.fnamemodify(source, ':p:h:h:h')
end

--- The command that starts the server, and where it was found.
--- Order: `vim.g.ouzel.cmd`, `ouzel` on PATH, the `.venv` of the ouzel checkout holding this
--- plugin (so a clone works without touching PATH).
--- @return string[]? cmd
--- @return string where it came from, or why nothing was found
function M.server_command()
  local options = M.get()
  if options.cmd then
    if options.cmd[1] and vim.fn.executable(options.cmd[1]) == 1 then
      return options.cmd, 'vim.g.ouzel.cmd'
    end
    return nil, ('vim.g.ouzel.cmd = %s is not executable'):format(vim.inspect(options.cmd))
  end
  local on_path = vim.fn.exepath('ouzel')
  if on_path ~= '' then
    return { on_path, 'serve' }, 'PATH'
  end
  local checkout = vim.fs.normalize(M.plugin_root() .. '/../../.venv/bin/ouzel')
  if vim.fn.executable(checkout) == 1 then
    return { checkout, 'serve' }, 'the ouzel checkout'
  end
  return nil,
    'the `ouzel` command is not on PATH; install ouzel (pip install ouzel) '
      .. 'or set vim.g.ouzel = { cmd = { "/path/to/ouzel", "serve" } }'
end

--- The TCP address to connect to, or nil for stdio.
--- @return string? host
--- @return integer? port
function M.tcp_address()
  local options = M.get()
  if options.port then
    return options.host, options.port
  end
  return nil, nil
end

--- The token a remote server asks for: `vim.g.ouzel.token_file`, else `$OUZEL_TOKEN`.
--- @return string? token
--- @return string? problem why the configured token file could not be read
function M.token()
  local path = M.get().token_file
  if path then
    local file, err = io.open(vim.fs.normalize(path), 'r')
    if not file then
      return nil, ('cannot read vim.g.ouzel.token_file: %s'):format(err)
    end
    local token = vim.trim(file:read('*a') or '')
    file:close()
    return token ~= '' and token or nil, token == '' and (path .. ' is empty') or nil
  end
  local from_env = vim.env.OUZEL_TOKEN
  return from_env ~= '' and from_env or nil, nil
end

return M
