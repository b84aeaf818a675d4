-- An in-process LSP server whose inline completions the test scripts, for the plugin's
-- rendering and accept rules (UTF-16 positions, ranges, stale answers, garbage). The real
-- server and model are exercised in test_neovim.py; this one only lets a test force a case.
--
-- Use: vim.lsp.config('ouzel', { cmd = require('scripted_server').cmd })
-- Then set `Scripted.answer` (a result table, or a function(params) returning one, or the
-- string 'never' to leave requests unanswered) and read `Scripted.requests` /
-- `Scripted.notifications` / `Scripted.commands`.

Scripted = {
  answer = vim.NIL,
  error = nil, -- { code = …, message = … } to answer inline completion requests with an error
  position_encoding = 'utf-16',
  delay_ms = 0, -- answer inline completion requests this late
  ignore_cancel = false, -- answer even cancelled requests (a server that finished anyway)
  answered = 0,
  offered_commands = { 'ouzel.accepted' }, -- executeCommandProvider.commands
  hold = false, -- keep inline completion requests until Scripted.release()
  held = {},
  requests = {},
  notifications = {},
  commands = {},
  cancelled = {},
  apply_results = {}, -- answers to Scripted.apply_edit: { ok, result, err }
  request_results = {}, -- answers to Scripted.server_request: { method, ok, result, err }
  -- method -> function(params, id): a result to answer at once, or nil to answer later
  -- with Scripted.respond(id, err, result) (streamed work: chat, code actions)
  on = {},
  waiting = {}, -- id -> callback of requests answered later
}

--- Answer a request an `on` handler left open.
function Scripted.respond(id, err, result)
  local callback = Scripted.waiting[id]
  Scripted.waiting[id] = nil
  err = err ~= vim.NIL and err or nil -- a test's None, as a real client sees a missing field
  if callback then
    callback(err, result)
  end
end

--- Send `workspace/applyEdit` to the client as a server does (Neovim runs server requests
--- in a coroutine and answers when the handler returns); the answer lands in apply_results.
function Scripted.apply_edit(params)
  local dispatchers = assert(Scripted.dispatchers, 'no client has started the scripted server')
  vim.schedule(coroutine.wrap(function()
    local ok, result, err = pcall(dispatchers.server_request, 'workspace/applyEdit', params)
    table.insert(Scripted.apply_results, { ok = ok, result = result, err = err })
  end))
end

--- Send any request to the client as a server does (`window/showMessageRequest`, an
--- applyEdit); the answer lands in request_results as { method, ok, result, err }.
function Scripted.server_request(method, params)
  local dispatchers = assert(Scripted.dispatchers, 'no client has started the scripted server')
  vim.schedule(coroutine.wrap(function()
    local ok, result, err = pcall(dispatchers.server_request, method, params)
    table.insert(
      Scripted.request_results,
      { method = method, ok = ok, result = result == nil and vim.NIL or result, err = err }
    )
  end))
end

--- Send `$/progress` with `value` on `token`, as a server streams work.
function Scripted.progress(token, value)
  Scripted.dispatchers.notification('$/progress', { token = token, value = value })
end

local M = {}

--- Answer every held request with the current `Scripted.answer`.
function Scripted.release()
  local held = Scripted.held
  Scripted.held = {}
  for _, answer in ipairs(held) do
    answer()
  end
end

--- @param dispatchers vim.lsp.rpc.Dispatchers
--- @return vim.lsp.rpc.PublicClient
function M.cmd(dispatchers)
  Scripted.dispatchers = dispatchers
  local closing = false
  local next_id = 0
  local pending = {} --- @type table<integer, fun(err?: table, result?: any)>

  local function respond(id, callback, err, result, delay_ms)
    vim.defer_fn(function()
      if pending[id] then
        pending[id] = nil
        callback(err, result)
      end
    end, delay_ms or 0)
  end

  local handlers = {
    initialize = function()
      return {
        capabilities = {
          positionEncoding = Scripted.position_encoding,
          textDocumentSync = { openClose = true, change = 2 },
          inlineCompletionProvider = true,
          executeCommandProvider = { commands = Scripted.offered_commands },
        },
        serverInfo = { name = 'scripted', version = '0' },
      }
    end,
    shutdown = function()
      return vim.NIL
    end,
    ['ouzel/status'] = function()
      return { version = 'scripted', positionEncoding = Scripted.position_encoding }
    end,
    ['workspace/executeCommand'] = function(params)
      table.insert(Scripted.commands, params)
      return vim.NIL
    end,
  }

  local client = {}

  function client.request(method, params, callback)
    next_id = next_id + 1
    local id = next_id
    pending[id] = callback
    table.insert(Scripted.requests, { method = method, params = params, id = id })
    if method == 'textDocument/inlineCompletion' then
      if Scripted.hold then
        table.insert(Scripted.held, function()
          respond(id, function(...)
            Scripted.answered = Scripted.answered + 1
            callback(...)
          end, nil, Scripted.answer)
        end)
      elseif Scripted.error then
        respond(id, callback, Scripted.error, nil)
      elseif Scripted.answer ~= 'never' then
        local answer = Scripted.answer
        if type(answer) == 'function' then
          answer = answer(params)
        end
        respond(id, function(...)
          Scripted.answered = Scripted.answered + 1
          callback(...)
        end, nil, answer, Scripted.delay_ms)
      end
    elseif Scripted.on[method] then
      Scripted.waiting[id] = callback
      local result = Scripted.on[method](params, id)
      if result ~= nil then
        Scripted.respond(id, nil, result)
      end
    elseif handlers[method] then
      respond(id, callback, nil, handlers[method](params))
    else
      respond(id, callback, { code = -32601, message = 'unknown method ' .. method }, nil)
    end
    return true, id
  end

  function client.notify(method, params)
    table.insert(Scripted.notifications, { method = method, params = params })
    if method == '$/cancelRequest' then
      table.insert(Scripted.cancelled, params.id)
      local callback = pending[params.id]
      if callback and not Scripted.ignore_cancel then
        respond(params.id, callback, { code = -32800, message = 'cancelled' }, nil)
      end
    elseif method == 'exit' then
      closing = true
      vim.schedule(function()
        dispatchers.on_exit(0, 0)
      end)
    end
    return true
  end

  function client.is_closing()
    return closing
  end

  function client.terminate()
    if not closing then
      closing = true
      vim.schedule(function() -- as a killed process's exit is seen
        dispatchers.on_exit(0, 15)
      end)
    end
  end

  return client
end

return M
