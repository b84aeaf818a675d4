--- The agent (`:Ouzel agent`, agent mode in the chat buffer): a turn is the server command
--- `ouzel.agent`, whose `$/progress` reports (tool steps and the model's text) stream into
--- the chat buffer. Every file change comes as a `workspace/applyEdit` confirmed hunk by hunk
--- (`ouzel.confirm`), a protected file first as a `window/showMessageRequest`
--- (`ouzel.ask`). The server writes the accepted text to disk itself; after a turn (and an
--- undo) the buffers whose text equals the file on disk are reloaded unmodified, so Neovim
--- shows no "changed since editing started" warning. `ouzel.agent.undo` undoes a whole turn.
--- Protocol: docs/AGENT.md.

local api = vim.api
local jobs = require('ouzel.jobs')

local M = {}

M.COMMAND = 'ouzel.agent'
M.UNDO = 'ouzel.agent.undo'
M.MAX_MESSAGE = 20000

--- @param value any
--- @return any
local function present(value)
  if value == vim.NIL then
    return nil
  end
  return value
end

--- @param value any
--- @return string?
local function text(value)
  value = present(value)
  return type(value) == 'string' and value or nil
end

--- One line of the chat buffer for a tool step of a `report`, or nil when it has none:
--- `- step 2/12: read_file geometry.py lines 1-40 (ok)`, with the reason of a refusal.
--- @param value table a `$/progress` report
--- @return string?
function M.tool_line(value)
  local tool = present(value.tool)
  if type(tool) ~= 'table' or not text(tool.name) then
    return nil
  end
  local step = (text(value.message) or ''):match('^(step %d+/%d+)')
  local what = tool.name
  local summary = text(tool.summary)
  if summary and summary ~= '' then
    what = what .. ' ' .. summary
  end
  local status = text(tool.status) or 'ok'
  local line = ('- %s%s (%s)'):format(step and (step .. ': ') or '', what, status)
  local reason = text(tool.reason)
  if reason and reason ~= '' then
    line = line .. ': ' .. reason
  end
  return (line:gsub('[\r\n]+', ' '))
end

--- The lines that close an agent turn in the chat buffer: files, edits, how it stopped, and
--- how to undo it.
--- @param result table the `ouzel.agent` result
--- @return string[]
function M.summary_lines(result)
  local lines = {}
  local files = present(result.files)
  local parts = {}
  for _, file in ipairs(type(files) == 'table' and files or {}) do
    if type(file) == 'table' and text(file.path) then
      local hunks, accepted = present(file.hunks), present(file.accepted)
      local detail = {}
      if file.created == true then
        table.insert(detail, 'new')
      end
      if type(hunks) == 'number' then
        table.insert(detail, ('%s of %d hunk(s)'):format(tostring(accepted or 0), hunks))
      end
      table.insert(
        parts,
        #detail > 0 and ('%s (%s)'):format(file.path, table.concat(detail, ', ')) or file.path
      )
    end
  end
  if #parts > 0 then
    table.insert(lines, 'Files: ' .. table.concat(parts, ', '))
  end
  local edits = present(result.edits)
  if type(edits) == 'table' then
    local counts = {}
    for _, name in ipairs({ 'proposed', 'applied', 'rejected', 'refused', 'retried' }) do
      local count = present(edits[name])
      if type(count) == 'number' then
        table.insert(counts, ('%d %s'):format(count, name))
      end
    end
    if #counts > 0 then
      table.insert(lines, 'Edits: ' .. table.concat(counts, ', '))
    end
  end
  local status = text(result.status) or 'done'
  local how = {
    done = 'done',
    steps = 'stopped: out of steps',
    tokens = 'stopped: out of tokens',
    time = 'stopped: out of time',
    cancelled = 'stopped',
    error = 'error',
  }
  local ending = how[status] or status
  local error_text = text(result.error)
  if error_text and error_text ~= '' then
    ending = ending .. ': ' .. error_text
  end
  local figures = {}
  if type(present(result.steps)) == 'number' then
    table.insert(figures, ('%d step(s)'):format(result.steps))
  end
  if type(present(result.tokens)) == 'number' then
    table.insert(figures, ('%d tokens'):format(result.tokens))
  end
  if text(result.backend) then
    table.insert(figures, result.backend)
  end
  table.insert(
    lines,
    ('_(%s%s)_'):format(ending, #figures > 0 and (', ' .. table.concat(figures, ', ')) or '')
  )
  if M.undoable(result) then
    table.insert(lines, 'Undo: gu here, or :Ouzel agent undo (restores every file of this turn)')
  end
  return lines
end

--- Whether a result changed something that `ouzel.agent.undo` can take back.
--- @param result table
--- @return boolean
function M.undoable(result)
  local undo = present(result.undo)
  if type(undo) ~= 'table' or text(undo.command) ~= M.UNDO then
    return false
  end
  local edits = present(result.edits)
  local applied = type(edits) == 'table' and present(edits.applied) or nil
  return applied == nil or (type(applied) == 'number' and applied > 0)
end

--- The bytes Neovim would write for `bufnr`, or nil when they cannot be told simply
--- (another encoding, 'binary').
--- @param bufnr integer
--- @return string?
function M.buffer_bytes(bufnr)
  local bo = vim.bo[bufnr]
  if bo.binary or (bo.fileencoding ~= '' and bo.fileencoding ~= 'utf-8') then
    return nil
  end
  local eol = ({ dos = '\r\n', mac = '\r' })[bo.fileformat] or '\n'
  local lines = api.nvim_buf_get_lines(bufnr, 0, -1, false)
  if #lines == 1 and lines[1] == '' then
    return nil -- an empty buffer: written as nothing or as one line end, compared twice
  end
  local body = table.concat(lines, eol)
  if bo.endofline or bo.fixendofline then
    body = body .. eol
  end
  if bo.bomb then
    body = '\239\187\191' .. body
  end
  return body
end

--- Whether the text of `bufnr` is what its file on disk holds.
--- @param bufnr integer
--- @return boolean
function M.equals_disk(bufnr)
  local path = api.nvim_buf_get_name(bufnr)
  if path == '' or vim.fn.filereadable(path) == 0 then
    return false
  end
  local file = io.open(path, 'rb')
  if not file then
    return false
  end
  local disk = file:read('*a')
  file:close()
  local bytes = M.buffer_bytes(bufnr)
  if bytes == nil then
    local lines = api.nvim_buf_get_lines(bufnr, 0, -1, false)
    return #lines == 1 and lines[1] == '' and (disk == '' or disk == '\n')
  end
  return bytes == disk
end

--- After the server wrote files: reload each modified buffer of `bufnrs` whose text equals
--- its file on disk (so it is unmodified and Neovim knows the file's new time: no W12/W13
--- prompt; an unmodified buffer with the same text gets none). A buffer whose text differs
--- (the user changed it since) is left alone.
--- @param bufnrs integer[]
--- @return integer[] reloaded
function M.sync(bufnrs)
  local reloaded = {}
  for _, bufnr in ipairs(bufnrs) do
    if
      api.nvim_buf_is_valid(bufnr)
      and api.nvim_buf_is_loaded(bufnr)
      and vim.bo[bufnr].buftype == ''
      and vim.bo[bufnr].modified
      and M.equals_disk(bufnr)
    then
      local ok = pcall(api.nvim_buf_call, bufnr, function()
        vim.cmd('silent keepjumps keepalt edit!')
      end)
      if ok then
        table.insert(reloaded, bufnr)
      end
    end
  end
  return reloaded
end

--- The buffers a result names (files of the turn, or of an undo), loaded or not.
--- @param paths string[] file paths or uris
--- @param root? string folder relative paths are in
--- @return integer[]
local function buffers_of(paths, root)
  local found = {}
  for _, path in ipairs(paths) do
    local name = path:match('^file://') and vim.uri_to_fname(path)
      or (root and vim.fs.joinpath(root, path))
      or path
    local bufnr = vim.fn.bufnr(vim.fs.normalize(name))
    if bufnr > 0 then
      found[bufnr] = true
    end
  end
  return vim.tbl_keys(found)
end

--- The buffers to bring in line with the disk after a turn: those the plugin applied edits
--- to during it, and those the result names.
--- @param client vim.lsp.Client?
--- @param result? table
--- @return integer[]
function M.touched(client, result)
  local set = {}
  for bufnr in pairs(require('ouzel.confirm').take_touched()) do
    set[bufnr] = true
  end
  local paths = {}
  local files = result and present(result.files)
  for _, file in ipairs(type(files) == 'table' and files or {}) do
    if type(file) == 'table' then
      table.insert(paths, text(file.uri) or text(file.path))
    end
  end
  for _, key in ipairs({ 'restored', 'deleted' }) do
    local list = result and present(result[key])
    for _, path in ipairs(type(list) == 'table' and list or {}) do
      if type(path) == 'string' then
        table.insert(paths, path)
      end
    end
  end
  for _, bufnr in ipairs(buffers_of(paths, client and client.root_dir)) do
    set[bufnr] = true
  end
  return vim.tbl_keys(set)
end

--- Whether the server offers the agent's commands.
--- @param client vim.lsp.Client
--- @param command string
--- @return boolean
local function offers(client, command)
  local provider = client.server_capabilities and client.server_capabilities.executeCommandProvider
  local commands = type(provider) == 'table' and provider.commands or {}
  return vim.list_contains(commands, command)
end

--- A streamed report of an agent turn, in the chat buffer.
--- @param turn ouzel.ChatTurn
--- @param value any
function M.on_progress(turn, value)
  local chat = require('ouzel.chat')
  if type(value) ~= 'table' or not api.nvim_buf_is_valid(turn.buf) then
    return
  end
  if type(value.conversationId) == 'string' then
    chat.state.conversation_id = value.conversationId
  end
  if type(value.turnId) == 'string' then
    turn.turn_id = value.turnId
  end
  if value.kind ~= 'report' then
    return
  end
  local delta = text(value.delta)
  if delta and delta ~= '' then
    turn.streamed = turn.streamed .. delta
    chat.append_text(turn.buf, delta)
  end
  local line = M.tool_line(value)
  if line then
    -- A step goes on a line of its own; the model's next words start below it.
    local count = api.nvim_buf_line_count(turn.buf)
    local last = api.nvim_buf_get_lines(turn.buf, count - 1, count, false)[1] or ''
    local lines = last == '' and { line, '' } or { '', line, '' }
    chat.append_text(turn.buf, table.concat(lines, '\n'))
    table.insert(turn.tools, line)
  end
  -- The server writes accepted hunks as the turn goes: keep the buffers in line with it.
  M.sync(vim.tbl_keys(require('ouzel.confirm').touched))
end

--- The end of an agent turn: the answer (when it did not stream), the summary, the undo hint,
--- and buffers reloaded where they equal the disk.
--- @param turn ouzel.ChatTurn
--- @param client vim.lsp.Client
--- @param result? table
--- @param failure? string
function M.finish(turn, client, result, failure)
  local chat = require('ouzel.chat')
  if chat.state.token == turn.token then
    chat.state.token = nil
  end
  M.sync(M.touched(client, result))
  if not api.nvim_buf_is_valid(turn.buf) then
    return
  end
  local lines = {}
  if result then
    if type(result.conversationId) == 'string' then
      chat.state.conversation_id = result.conversationId
    end
    if type(result.turnId) == 'string' then
      turn.turn_id = result.turnId
    end
    local answer = text(result.answer)
    if answer and vim.trim(answer) ~= '' then
      local streamed = vim.trim((turn.streamed:gsub('\r\n?', '\n')))
      answer = answer:gsub('\r\n?', '\n')
      if not streamed:find(vim.trim(answer), 1, true) then
        vim.list_extend(lines, vim.split(vim.trim(answer), '\n', { plain = true }))
        table.insert(lines, '')
      end
    end
    vim.list_extend(lines, M.summary_lines(result))
    if M.undoable(result) then
      turn.undo = result.undo
      chat.state.last_undo = turn
    end
  else
    table.insert(lines, '_(error: ' .. tostring(failure) .. ')_')
  end
  local count = api.nvim_buf_line_count(turn.buf)
  local last = api.nvim_buf_get_lines(turn.buf, count - 1, count, false)[1] or ''
  if last ~= '' then
    table.insert(lines, 1, '')
  end
  table.insert(lines, '')
  chat.append_text(turn.buf, table.concat(lines, '\n'))
  vim.cmd.redrawstatus({ bang = true })
end

--- Start an agent turn for `message`, from `bufnr` (its document and selection go along).
--- @param message string
--- @param bufnr? integer
--- @param lines? {[1]: integer, [2]: integer} 1-based first and last line of a selection
function M.run(message, bufnr, lines)
  local chat = require('ouzel.chat')
  message = vim.trim(message or '')
  if message == '' then
    vim.notify('ouzel: tell the agent what to do: :Ouzel agent {task}', vim.log.levels.WARN)
    return
  end
  if #message > M.MAX_MESSAGE then
    vim.notify(
      ('ouzel: the task is longer than %d characters'):format(M.MAX_MESSAGE),
      vim.log.levels.ERROR
    )
    return
  end
  local client, params, source = chat.prepare(message, bufnr, lines)
  if not client then
    return
  end
  if not offers(client, M.COMMAND) then
    vim.notify('ouzel: this server has no agent (ouzel.agent)', vim.log.levels.ERROR)
    return
  end
  require('ouzel.confirm').take_touched()
  local token = params.workDoneToken
  local turn = chat.begin_turn(client, message, token, source, 'agent')
  local sent = jobs.start(client, 'workspace/executeCommand', {
    command = M.COMMAND,
    arguments = { params },
  }, token, {
    title = 'Ouzel agent',
    bufnr = source and source.bufnr or nil,
    on_progress = function(value)
      M.on_progress(turn, value)
    end,
    on_done = function(err, result)
      if err then
        M.finish(turn, client, nil, err.message)
        vim.notify('ouzel: the agent failed: ' .. tostring(err.message), vim.log.levels.ERROR)
        return
      end
      result = type(result) == 'table' and result or nil
      M.finish(turn, client, result, result and nil or 'the server sent no result')
      if result then
        local message_text = ('ouzel: agent %s'):format(text(result.status) or 'done')
        local edits = present(result.edits)
        if type(edits) == 'table' and type(present(edits.applied)) == 'number' then
          message_text = ('%s, %d edit(s) applied'):format(message_text, edits.applied)
        end
        if M.undoable(result) then
          message_text = message_text .. ' (:Ouzel agent undo takes them back)'
        end
        vim.notify(message_text, vim.log.levels.INFO)
      end
    end,
  })
  if not sent then
    M.finish(turn, client, nil, 'the server is not running')
  end
end

--- Undo an agent turn: the one `turn` names, else the last one of this Neovim, else the
--- server's last (its default). The server restores the files on disk and sends an edit
--- that sets the open buffers back; those are then reloaded unmodified.
--- @param turn? ouzel.ChatTurn
function M.undo(turn)
  local chat = require('ouzel.chat')
  turn = turn or chat.state.last_undo
  local client_id = chat.state.client_id
  local client = (client_id and vim.lsp.get_client_by_id(client_id))
    or require('ouzel').any_client()
  if not client then
    vim.notify('ouzel: no server is running', vim.log.levels.WARN)
    return
  end
  if not offers(client, M.UNDO) then
    vim.notify(
      'ouzel: this server cannot undo agent turns (ouzel.agent.undo)',
      vim.log.levels.ERROR
    )
    return
  end
  local undo = turn and turn.undo
  local arguments = undo and present(undo.arguments)
  if type(arguments) ~= 'table' then
    arguments = { turn and turn.turn_id and { turnId = turn.turn_id } or vim.empty_dict() }
  end
  require('ouzel.confirm').take_touched()
  client:request('workspace/executeCommand', {
    command = M.UNDO,
    arguments = arguments,
  }, function(err, result)
    if err then
      vim.notify('ouzel: undo failed: ' .. tostring(err.message), vim.log.levels.ERROR)
      return
    end
    result = type(result) == 'table' and result or {}
    M.sync(M.touched(client, result))
    local restored = present(result.restored)
    local deleted = present(result.deleted)
    restored = type(restored) == 'table' and restored or {}
    deleted = type(deleted) == 'table' and deleted or {}
    local parts = {}
    if #restored > 0 then
      table.insert(parts, 'restored ' .. table.concat(restored, ', '))
    end
    if #deleted > 0 then
      table.insert(parts, 'deleted ' .. table.concat(deleted, ', '))
    end
    local summary = #parts > 0 and table.concat(parts, '; ') or 'nothing to restore'
    -- Files the user changed after the agent wrote them are left alone (docs/AGENT.md).
    local problems = present(result.problems)
    local left = {}
    for _, problem in ipairs(type(problems) == 'table' and problems or {}) do
      table.insert(left, type(problem) == 'string' and problem or vim.inspect(problem))
    end
    if turn and chat.state.last_undo == turn then
      chat.state.last_undo = nil
    end
    if turn then
      turn.undo = nil
    end
    local buf = chat.state.buf
    if buf and api.nvim_buf_is_valid(buf) then
      local shown = {
        ('_(agent turn %s undone: %s)_'):format(tostring(present(result.turnId) or ''), summary),
      }
      for _, problem in ipairs(left) do
        table.insert(shown, '- not undone: ' .. problem:gsub('[\r\n]+', ' '))
      end
      table.insert(shown, '')
      chat.append(buf, shown)
    end
    if #left > 0 then
      vim.notify(
        ('ouzel: agent turn undone: %s; not undone: %s'):format(summary, table.concat(left, '; ')),
        vim.log.levels.WARN
      )
    else
      vim.notify('ouzel: agent turn undone: ' .. summary, vim.log.levels.INFO)
    end
  end)
end

return M
