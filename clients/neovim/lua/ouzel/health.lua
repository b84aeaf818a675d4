--- `:checkhealth ouzel`: Neovim, the server command and its version, a TCP server's
--- reachability, and what each running server reports (model, index, remote).

local health = vim.health
local config = require('ouzel.config')

local M = {}

local function check_neovim()
  health.start('ouzel: Neovim')
  local v = vim.version()
  local version = ('%d.%d.%d'):format(v.major, v.minor, v.patch)
  if vim.fn.has('nvim-0.11') == 0 then
    health.error('Neovim ' .. version .. ' is too old', { 'ouzel needs Neovim 0.11 or newer' })
    return
  end
  local native = vim.lsp.inline_completion ~= nil and config.get().native
  local engine = native and 'Neovim’s inline completion' or 'the plugin’s ghost text'
  health.ok(('Neovim %s; suggestions shown by %s'):format(version, engine))
  if vim.lsp.is_enabled('ouzel') then
    health.ok("vim.lsp.enable('ouzel') is on")
  else
    health.warn('the ouzel client is not enabled', { "add vim.lsp.enable('ouzel') to your config" })
  end
end

--- Whether a TCP connection to host:port opens within `timeout_ms`.
--- @return boolean reachable
--- @return string? error
local function tcp_reachable(host, port, timeout_ms)
  local resolved = vim.uv.getaddrinfo(host, nil, { socktype = 'stream' })
  local address = resolved and resolved[1] and resolved[1].addr or host
  local socket = assert(vim.uv.new_tcp())
  local done, failure = false, nil
  socket:connect(address, port, function(err)
    failure = err
    done = true
  end)
  local finished = vim.wait(timeout_ms, function()
    return done
  end, 10)
  if not socket:is_closing() then
    socket:close()
  end
  if not finished then
    return false, ('no answer within %d ms'):format(timeout_ms)
  end
  return failure == nil, failure
end

local function check_server_command()
  local host, port = config.tcp_address()
  if host and port then
    health.start('ouzel: server over TCP')
    local reachable, err = tcp_reachable(host, port, 2000)
    if reachable then
      health.ok(('%s:%d is reachable'):format(host, port))
    else
      health.error(('%s:%d is not reachable: %s'):format(host, port, err), {
        'start the server there: ouzel serve --tcp ' .. host .. ':' .. port,
        'or unset vim.g.ouzel.port to start it over stdio',
      })
    end
    if config.get().tls then
      if vim.fn.executable('openssl') == 1 then
        health.ok(
          'TLS through openssl s_client'
            .. (config.get().tls_ca and (' (CA ' .. config.get().tls_ca .. ')') or '')
        )
      else
        health.error('vim.g.ouzel.tls needs the `openssl` command, which is not on PATH')
      end
    end
    local token, problem = config.token()
    if problem then
      health.error(problem)
    elseif token then
      health.ok(
        'a token is sent ('
          .. (config.get().token_file and 'vim.g.ouzel.token_file' or '$OUZEL_TOKEN')
          .. ')'
      )
    else
      health.info('no token is sent (servers started with --token-file or $OUZEL_TOKEN need one)')
    end
    return
  end
  health.start('ouzel: server command')
  local cmd, origin = config.server_command()
  if not cmd then
    health.error(origin)
    return
  end
  health.ok(('%s (from %s)'):format(table.concat(cmd, ' '), origin))
  local ok, result = pcall(function()
    return vim.system({ cmd[1], '--version' }, { text = true }):wait(15000)
  end)
  if not ok then
    health.error('cannot run ' .. cmd[1] .. ': ' .. tostring(result))
  elseif result.code ~= 0 then
    health.error(('`%s --version` failed (exit %s): %s'):format(cmd[1], result.code, result.stderr))
  else
    health.ok('version: ' .. vim.trim(result.stdout))
  end
end

--- @param value any
--- @return any
local function present(value)
  if value == vim.NIL then
    return nil
  end
  return value
end

--- A section without a reader of its own: one line; an `error` or `state = "failed"` is an error.
--- @param name string
--- @param section table
local function report_generic(name, section)
  local summary = {}
  local keys = vim.tbl_keys(section)
  table.sort(keys)
  for _, key in ipairs(keys) do
    local value = present(section[key])
    if value ~= nil and type(value) ~= 'table' and key ~= 'error' then
      table.insert(summary, ('%s=%s'):format(key, tostring(value)))
    end
  end
  local line = ('%s: %s'):format(name, table.concat(summary, ', '))
  local err = present(section.error)
  if err or section.state == 'failed' then
    health.error(('%s: %s'):format(name, tostring(err or 'failed')), { line })
  else
    health.ok(line)
  end
end

--- The "model" section: the local model for suggestions.
--- @param model table
local function report_model(_, model)
  local file = vim.fs.basename(tostring(present(model.path) or 'the embedded model'))
  local where = ('%s (profile %s)'):format(file, tostring(present(model.profile)))
  if model.state == 'ready' then
    local seconds = present(model.loadSeconds)
    health.ok(
      ('model loaded: %s%s; %d suggestion request(s)'):format(
        where,
        seconds and (', in %.1f s'):format(seconds) or '',
        present(model.requests) or 0
      )
    )
  elseif model.state == 'failed' then
    health.error('model failed to load: ' .. tostring(present(model.error) or '?'), {
      ('set `%s` to a GGUF file, or leave it empty for the embedded model'):format(
        tostring(present(model.setting) or 'models.local.model_path')
      ),
    })
  elseif model.state == 'loading' then
    health.info('model loading: ' .. where)
  elseif model.state == 'none' then
    health.info('no local model serves suggestions (see routing.inline_completion)')
  else
    health.info(('model not loaded yet (%s): it loads with the first suggestion'):format(where))
  end
end

--- The "router" section: every model profile; remote ones must be reachable to be used.
--- @param router table
local function report_router(_, router)
  local names = vim.tbl_keys(type(router.profiles) == 'table' and router.profiles or {})
  table.sort(names)
  for _, name in ipairs(names) do
    local profile = router.profiles[name]
    if type(profile) == 'table' and profile.remote == true then
      local label = ('remote model %s (%s)'):format(name, tostring(present(profile.endpoint)))
      if profile.usable == true then
        health.ok(label .. ' is usable')
      else
        health.warn(('%s is not used: %s'):format(label, tostring(present(profile.skipReason))))
      end
    end
  end
end

local section_readers = { model = report_model, router = report_router }

local function check_clients()
  health.start('ouzel: running servers')
  local clients = vim.lsp.get_clients({ name = 'ouzel' })
  if #clients == 0 then
    health.info('no ouzel server is running; open a file to start one, then run this again')
    return
  end
  for _, client in ipairs(clients) do
    local transport = require('ouzel.connect').describe(client)
    local response, err = client:request_sync('ouzel/status', nil, 10000)
    if not response then
      health.error(
        ('client %d (%s): no answer to ouzel/status: %s'):format(client.id, transport, err)
      )
    elseif response.err then
      health.error(('client %d (%s): %s'):format(client.id, transport, response.err.message))
    else
      local status = response.result or {}
      health.ok(
        ('ouzel %s over %s; position encoding %s; workspace %s'):format(
          tostring(status.version),
          transport,
          tostring(status.positionEncoding),
          #(status.workspaceFolders or {}) > 0 and table.concat(status.workspaceFolders, ', ')
            or 'none (single files)'
        )
      )
      local names = vim.tbl_keys(status)
      table.sort(names)
      for _, name in ipairs(names) do
        local section = status[name]
        if type(section) == 'table' and not vim.islist(section) then
          local ok, err = pcall(section_readers[name] or report_generic, name, section)
          if not ok then
            health.warn(('cannot read the %s section: %s'):format(name, err))
          end
        end
      end
    end
  end
end

function M.check()
  check_neovim()
  check_server_command()
  check_clients()
end

return M
