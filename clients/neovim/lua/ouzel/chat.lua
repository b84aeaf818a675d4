--- `:Ouzel chat`: a scratch markdown buffer where questions and the streamed answers of
--- `ouzel/chat` appear (deltas from `$/progress`, which Neovim 0.11 pushes to `LspProgress`),
--- with the references as `file:line` (`<CR>`/`gf` open them), the project rules the server
--- used at the top, a stop key, the history (`ouzel/chatList`, `ouzel/chatLoad`), and code
--- blocks applied through `ouzel.applyCodeBlock` (confirmed hunk by hunk). docs/CHAT.md.
--- Agent mode (`gm`, or a question starting with `/agent `) sends the turn to the agent
--- instead (`ouzel.agent`); its steps stream here too (see `ouzel.agent`, docs/AGENT.md).

local api = vim.api
local jobs = require('ouzel.jobs')

local M = {}

M.NAME = 'ouzel://chat'
M.HEADER = 4 -- title, rules, keys, blank

--- @class ouzel.ChatSource
--- @field bufnr integer
--- @field uri string
--- @field range? lsp.Range whole lines of the selection

--- @class ouzel.ChatTurn
--- @field buf integer
--- @field token string
--- @field start integer 0-based row of "## You"
--- @field refs_row integer 0-based row where references go
--- @field answer_start integer 0-based first row of the answer
--- @field streamed string
--- @field refs_shown boolean
--- @field source? ouzel.ChatSource
--- @field mode 'chat'|'agent'
--- @field tools string[] the agent's steps as shown
--- @field turn_id? string
--- @field undo? table the agent result's undo command, while it can be undone

--- @class ouzel.ChatState
--- @field buf? integer
--- @field conversation_id? string
--- @field client_id? integer
--- @field token? string
--- @field turns ouzel.ChatTurn[]
--- @field references table<string, string>
--- @field mode 'chat'|'agent' what `i` and `:Ouzel chat` questions go to
--- @field last_undo? ouzel.ChatTurn the last agent turn that can be undone

--- @type ouzel.ChatState
M.state = { turns = {}, references = {}, mode = 'chat' }

--- The agent-mode prefix of a question: `/agent fix the tests` goes to the agent once.
M.AGENT_PREFIX = '/agent'

--- @param buf integer
--- @param fn fun()
local function edit(buf, fn)
  vim.bo[buf].modifiable = true
  local ok, err = pcall(fn)
  vim.bo[buf].modifiable = false
  if not ok then
    error(err, 0)
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

local KEYS = 'Keys: i ask · gm chat/agent mode · gu undo agent turn · <C-c> stop · '
  .. '<CR>/gf open file:line · ga apply code block · gh history · q close'

--- The title line of the chat buffer.
--- @param title? string
--- @return string
function M.title_line(title)
  local line = '# Ouzel chat' .. (title and (': ' .. title) or '')
  if M.state.mode == 'agent' then
    line = line .. ' (agent mode: the agent edits files, you confirm each hunk)'
  end
  return line
end

local function set_keys(buf)
  local function map(lhs, fn, desc)
    vim.keymap.set('n', lhs, fn, { buffer = buf, nowait = true, silent = true, desc = desc })
  end
  map('i', M.prompt, 'ouzel: ask in the chat')
  map('a', M.prompt, 'ouzel: ask in the chat')
  map('<C-c>', M.stop, 'ouzel: stop the answer')
  map('<CR>', M.open_reference, 'ouzel: open the file:line under the cursor')
  map('gf', M.open_reference, 'ouzel: open the file:line under the cursor')
  map('ga', M.apply_block, 'ouzel: apply the code block under the cursor')
  map('gh', M.history, 'ouzel: past conversations')
  map('gm', M.toggle_mode, 'ouzel: switch between chat and agent mode')
  map('gu', M.undo_at_cursor, 'ouzel: undo the agent turn under the cursor (or the last)')
  map('q', function()
    if not pcall(vim.cmd.close) then -- the last window: show another buffer instead
      vim.cmd.bprevious()
    end
  end, 'ouzel: close the chat window')
end

--- The chat buffer, made when first needed.
--- @return integer
function M.buffer()
  local buf = M.state.buf
  if buf and api.nvim_buf_is_valid(buf) then
    return buf
  end
  buf = api.nvim_create_buf(false, true)
  api.nvim_buf_set_name(buf, M.NAME)
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].bufhidden = 'hide'
  vim.bo[buf].swapfile = false
  vim.bo[buf].filetype = 'markdown'
  M.state = { buf = buf, turns = {}, references = {}, mode = M.state.mode or 'chat' }
  edit(buf, function()
    api.nvim_buf_set_lines(buf, 0, -1, false, {
      M.title_line(),
      'Rules: shown with the first answer',
      KEYS,
      '',
    })
  end)
  set_keys(buf)
  return buf
end

--- Show the chat buffer in a split (or the window already showing it).
--- @param enter? boolean move the cursor there (default true)
--- @return integer buf
function M.open(enter)
  local buf = M.buffer()
  local win = vim.fn.bufwinid(buf)
  if win == -1 then
    local previous = api.nvim_get_current_win()
    vim.cmd(('botright %s'):format(vim.o.columns >= 160 and 'vsplit' or 'split'))
    win = api.nvim_get_current_win()
    api.nvim_win_set_buf(win, buf)
    vim.wo[win].wrap = true
    vim.wo[win].linebreak = true
    if enter == false then
      api.nvim_set_current_win(previous)
    end
  elseif enter ~= false then
    api.nvim_set_current_win(win)
  end
  return buf
end

--- @param buf integer
--- @param lines string[]
local function append(buf, lines)
  edit(buf, function()
    api.nvim_buf_set_lines(buf, -1, -1, false, lines)
  end)
end
M.append = append

--- Append streamed text at the end of the buffer (the answer is always the last thing).
--- @param buf integer
--- @param text string
local function append_text(buf, text)
  local count = api.nvim_buf_line_count(buf)
  local last = api.nvim_buf_get_lines(buf, count - 1, count, false)[1] or ''
  local pieces = vim.split(last .. text:gsub('\r\n?', '\n'), '\n', { plain = true })
  edit(buf, function()
    api.nvim_buf_set_lines(buf, count - 1, count, false, pieces)
  end)
  local win = vim.fn.bufwinid(buf)
  if win ~= -1 and win ~= api.nvim_get_current_win() then
    api.nvim_win_set_cursor(win, { api.nvim_buf_line_count(buf), 0 })
  end
end
M.append_text = append_text

--- Lines of a reference list: `- path:line-end (source label)`.
--- @param references table[]
--- @return string[]
function M.reference_lines(references)
  local lines = { 'References:' }
  for _, ref in ipairs(references) do
    if type(ref) == 'table' and type(ref.path) == 'string' and type(ref.line) == 'number' then
      local where = ('%s:%d'):format(ref.path, ref.line)
      local end_line = present(ref.endLine)
      if type(end_line) == 'number' and end_line > ref.line then
        where = ('%s-%d'):format(where, end_line)
      end
      local about = { tostring(present(ref.source) or 'context') }
      if type(present(ref.label)) == 'string' and ref.label ~= '' then
        table.insert(about, ref.label)
      end
      table.insert(lines, ('- %s (%s)'):format(where, table.concat(about, ', ')))
    end
  end
  table.insert(lines, '')
  return #lines > 2 and lines or {}
end

--- Remember where each referenced path lives, for `open_reference`.
--- @param references table[]
local function remember(references)
  for _, ref in ipairs(references) do
    if type(ref) == 'table' and type(ref.path) == 'string' and type(ref.uri) == 'string' then
      M.state.references[ref.path] = ref.uri
    end
  end
end

--- @param turn ouzel.ChatTurn
--- @param references any
local function show_references(turn, references)
  if turn.refs_shown or type(references) ~= 'table' or #references == 0 then
    return
  end
  local lines = M.reference_lines(references)
  if #lines == 0 then
    return
  end
  turn.refs_shown = true
  remember(references)
  edit(turn.buf, function()
    api.nvim_buf_set_lines(turn.buf, turn.refs_row, turn.refs_row, false, lines)
  end)
  turn.answer_start = turn.answer_start + #lines
end

--- The rules line of the header, from a result's `rules`.
--- @param rules any
--- @return string
function M.rules_line(rules)
  if type(rules) ~= 'table' or #rules == 0 then
    return 'Rules: none (add .ouzel/rules.md or AGENTS.md to the workspace)'
  end
  local parts = {}
  for _, rule in ipairs(rules) do
    if type(rule) == 'table' and type(rule.path) == 'string' then
      table.insert(parts, rule.path .. (rule.truncated == true and ' (cut)' or ''))
    end
  end
  return 'Rules: ' .. table.concat(parts, ', ')
end

--- Start a turn in the buffer: the question, then room for references and the answer.
--- @param client vim.lsp.Client
--- @param message string
--- @param token string
--- @param source? ouzel.ChatSource
--- @param mode? 'chat'|'agent'
--- @return ouzel.ChatTurn
function M.begin_turn(client, message, token, source, mode)
  local buf = M.open(false)
  M.state.client_id = client.id
  M.state.token = token
  local start = api.nvim_buf_line_count(buf)
  local agent = mode == 'agent'
  local lines = { agent and '## You (agent)' or '## You' }
  vim.list_extend(lines, vim.split(message, '\n', { plain = true }))
  vim.list_extend(lines, { '', agent and '## Ouzel agent' or '## Ouzel', '' })
  append(buf, lines)
  local answer = api.nvim_buf_line_count(buf) - 1
  local turn = {
    buf = buf,
    token = token,
    start = start,
    refs_row = answer,
    answer_start = answer,
    streamed = '',
    refs_shown = false,
    source = source,
    mode = agent and 'agent' or 'chat',
    tools = {},
  }
  table.insert(M.state.turns, turn)
  return turn
end

--- A turn for an "explain" or "write tests" code action (its answer is a chat turn).
--- @param client vim.lsp.Client
--- @param title string
--- @param token string
--- @return ouzel.ChatTurn
function M.begin_action_turn(client, title, token)
  return M.begin_turn(client, title, token, nil)
end

local reading_ns = api.nvim_create_namespace('ouzel_chat_reading')

--- Before the first text: how far the model has read the prompt, as a virtual line
--- below the turn (nothing in the buffer's text); nil clears it.
--- @param turn ouzel.ChatTurn
--- @param message string?
local function show_reading(turn, message)
  api.nvim_buf_clear_namespace(turn.buf, reading_ns, 0, -1)
  if message and message ~= '' then
    local last = api.nvim_buf_line_count(turn.buf) - 1
    api.nvim_buf_set_extmark(turn.buf, reading_ns, last, 0, {
      virt_lines = { { { message, 'Comment' } } },
    })
  end
end

--- One `$/progress` value of a turn.
--- @param turn ouzel.ChatTurn
--- @param value any
function M.on_progress(turn, value)
  if type(value) ~= 'table' or not api.nvim_buf_is_valid(turn.buf) then
    return
  end
  if type(value.conversationId) == 'string' then
    M.state.conversation_id = value.conversationId
  end
  if value.kind == 'report' then
    show_references(turn, value.references)
    if type(value.delta) == 'string' and value.delta ~= '' then
      show_reading(turn, nil)
      turn.streamed = turn.streamed .. value.delta
      append_text(turn.buf, value.delta)
    elseif value.delta == nil and turn.streamed == '' and type(value.message) == 'string' then
      show_reading(turn, value.message) -- a local model reading a long prompt
    end
  elseif value.kind == 'end' then
    show_reading(turn, nil)
  end
end

--- The end of a turn: the full reply (replacing the streamed text if a delta was lost),
--- references, rules, and how it stopped.
--- @param turn ouzel.ChatTurn
--- @param result? table
--- @param failure? string
function M.finish(turn, result, failure)
  if M.state.token == turn.token then
    M.state.token = nil
  end
  if not api.nvim_buf_is_valid(turn.buf) then
    return
  end
  local buf = turn.buf
  if result then
    if type(result.conversationId) == 'string' then
      M.state.conversation_id = result.conversationId
    end
    show_references(turn, result.references)
    local reply = type(result.reply) == 'string' and result.reply or nil
    if reply and reply:gsub('\r\n?', '\n') ~= turn.streamed:gsub('\r\n?', '\n') then
      edit(buf, function()
        api.nvim_buf_set_lines(
          buf,
          turn.answer_start,
          -1,
          false,
          vim.split(reply:gsub('\r\n?', '\n'), '\n', { plain = true })
        )
      end)
    end
    if result.rules ~= nil then
      edit(buf, function()
        api.nvim_buf_set_lines(buf, 1, 2, false, { M.rules_line(result.rules) })
      end)
    end
    if result.cancelled == true or result.stopReason == 'cancelled' then
      append(buf, { '', '_(stopped)_' })
    elseif type(result.error) == 'string' then
      append(buf, { '', '_(error: ' .. result.error .. ')_' })
    elseif result.stopReason == 'length' then
      append(buf, { '', '_(cut at the token limit)_' })
    end
  elseif failure then
    append(buf, { '', '_(error: ' .. tostring(failure) .. ')_' })
  end
  append(buf, { '' })
  vim.cmd.redrawstatus({ bang = true })
end

--- The ouzel client for a buffer, else any.
--- @param bufnr integer
--- @return vim.lsp.Client?
--- @return boolean attached whether it serves `bufnr`
local function client_for(bufnr)
  local ouzel = require('ouzel')
  local client = ouzel.client(bufnr)
  if client then
    return client, true
  end
  local id = M.state.client_id
  client = id and vim.lsp.get_client_by_id(id) or ouzel.any_client()
  return client, false
end

--- The client, request params and source of a question (chat or agent) asked from `bufnr`
--- (its document and selection go along as context); nil with a message when it cannot go.
--- @param message string
--- @param bufnr? integer the buffer the question is about
--- @param lines? {[1]: integer, [2]: integer} 1-based first and last line of a selection
--- @return vim.lsp.Client?
--- @return table params
--- @return ouzel.ChatSource?
function M.prepare(message, bufnr, lines)
  if bufnr == nil or bufnr == M.state.buf then
    -- Asked from the chat buffer: about the file of the last question, without a selection.
    local last = M.state.turns[#M.state.turns]
    bufnr = last and last.source and last.source.bufnr or nil
    lines = nil
  end
  local client, attached = client_for(bufnr or api.nvim_get_current_buf())
  if not client then
    vim.notify(
      "ouzel: no server is running; open a file after vim.lsp.enable('ouzel')",
      vim.log.levels.WARN
    )
    return nil, {}, nil
  end
  if M.state.token and jobs.active[M.state.token] then
    vim.notify('ouzel: an answer is still streaming; stop it with <C-c> first', vim.log.levels.WARN)
    return nil, {}, nil
  end
  local params = {
    message = message,
    workDoneToken = jobs.new_token('chat'),
    conversationId = M.state.conversation_id,
  }
  local source = nil --- @type ouzel.ChatSource?
  if attached and bufnr and api.nvim_buf_is_valid(bufnr) then
    source = { bufnr = bufnr, uri = vim.uri_from_bufnr(bufnr) }
    params.textDocument = { uri = source.uri }
    if lines then
      source.range = {
        start = { line = lines[1] - 1, character = 0 },
        ['end'] = { line = lines[2], character = 0 },
      }
      params.selection = source.range
    end
  elseif lines then
    vim.notify(
      'ouzel: this buffer is not served by ouzel; the selection is not sent',
      vim.log.levels.WARN
    )
  end
  return client, params, source
end

--- A question's mode and text: `/agent …` goes to the agent, `/chat …` to the chat, anything
--- else to the chat buffer's mode.
--- @param message string
--- @return 'chat'|'agent' mode
--- @return string message without the prefix
function M.split_mode(message)
  local trimmed = vim.trim(message or '')
  for _, mode in ipairs({ 'agent', 'chat' }) do
    local prefix = '/' .. mode
    if trimmed == prefix or vim.startswith(trimmed, prefix .. ' ') then
      return mode --[[@as 'chat'|'agent']], vim.trim(trimmed:sub(#prefix + 1))
    end
  end
  return M.state.mode or 'chat', trimmed
end

--- Ask `message` in the chat, from `bufnr` (its document and selection go along as context).
--- In agent mode, or with the `/agent ` prefix, the agent gets it (`ouzel.agent.run`).
--- @param message string
--- @param bufnr? integer the buffer the question is about
--- @param lines? {[1]: integer, [2]: integer} 1-based first and last line of a selection
function M.ask(message, bufnr, lines)
  local mode
  mode, message = M.split_mode(message)
  if mode == 'agent' then
    require('ouzel.agent').run(message, bufnr, lines)
    return
  end
  if message == '' then
    vim.notify('ouzel: ask something: :Ouzel chat {question}', vim.log.levels.WARN)
    return
  end
  local client, params, source = M.prepare(message, bufnr, lines)
  if not client then
    return
  end
  local token = params.workDoneToken
  local turn = M.begin_turn(client, message, token, source)
  local sent = jobs.start(client, 'ouzel/chat', params, token, {
    title = 'Ouzel chat',
    on_progress = function(value)
      M.on_progress(turn, value)
    end,
    on_done = function(err, result)
      if err then
        M.finish(turn, nil, err.message)
        vim.notify('ouzel: chat failed: ' .. tostring(err.message), vim.log.levels.ERROR)
      else
        M.finish(turn, type(result) == 'table' and result or nil)
      end
    end,
  })
  if not sent then
    M.finish(turn, nil, 'the server is not running')
  end
end

--- `gm`: switch the chat buffer between chat and agent mode.
--- @param mode? 'chat'|'agent' (default: the other one)
--- @return 'chat'|'agent'
function M.toggle_mode(mode)
  M.state.mode = mode or (M.state.mode == 'agent' and 'chat' or 'agent')
  local buf = M.state.buf
  if buf and api.nvim_buf_is_valid(buf) then
    local first = api.nvim_buf_get_lines(buf, 0, 1, false)[1] or ''
    local title = first:match('^# Ouzel chat: (.-)%s*%(agent mode')
      or first:match('^# Ouzel chat: (.*)$')
    edit(buf, function()
      api.nvim_buf_set_lines(buf, 0, 1, false, { M.title_line(title) })
    end)
  end
  vim.notify(
    M.state.mode == 'agent'
        and 'ouzel: agent mode: questions go to the agent, which proposes edits you confirm'
      or 'ouzel: chat mode',
    vim.log.levels.INFO
  )
  return M.state.mode
end

--- `i` in the chat buffer: ask a follow-up question.
function M.prompt()
  local prompt = M.state.mode == 'agent' and 'Ask the ouzel agent: ' or 'Ask ouzel: '
  vim.ui.input({ prompt = prompt }, function(answer)
    if type(answer) == 'string' and vim.trim(answer) ~= '' then
      M.ask(answer)
    end
  end)
end

--- Stop the answer that is streaming.
--- @return boolean stopped
function M.stop()
  local token = M.state.token
  if token and jobs.cancel(token) > 0 then
    vim.notify('ouzel: stopping the answer', vim.log.levels.INFO)
    return true
  end
  vim.notify('ouzel: nothing to stop', vim.log.levels.INFO)
  return false
end

--- The `file:line` under the cursor of the chat buffer, or the first on its line.
--- @param line string
--- @param col integer 0-based byte column
--- @return string? path
--- @return integer? line
function M.reference_at(line, col)
  local first_path, first_line
  for start, path, number, stop in line:gmatch('()([%w%._/~%-]+%.[%w]+):(%d+)()') do
    if first_path == nil then
      first_path, first_line = path, tonumber(number)
    end
    if col + 1 >= start and col + 1 < stop then
      return path, tonumber(number)
    end
  end
  return first_path, first_line
end

--- The file a reference path names: the server's uri for it, else under the workspace root.
--- @param path string
--- @return string? file
function M.resolve(path)
  local uri = M.state.references[path]
  if uri then
    return vim.uri_to_fname(uri)
  end
  if path:sub(1, 1) == '/' or path:sub(1, 1) == '~' then
    local full = vim.fs.normalize(path)
    return vim.fn.filereadable(full) == 1 and full or nil
  end
  local roots = {}
  local client = M.state.client_id and vim.lsp.get_client_by_id(M.state.client_id)
  for _, folder in ipairs(client and client.workspace_folders or {}) do
    table.insert(roots, vim.uri_to_fname(folder.uri))
  end
  if client and client.root_dir then
    table.insert(roots, client.root_dir)
  end
  table.insert(roots, vim.fn.getcwd())
  for _, root in ipairs(roots) do
    local full = vim.fs.joinpath(root, path)
    if vim.fn.filereadable(full) == 1 then
      return full
    end
  end
  return nil
end

--- `<CR>`/`gf`: open the `file:line` under the cursor in another window.
function M.open_reference()
  local cursor = api.nvim_win_get_cursor(0)
  local path, line = M.reference_at(api.nvim_get_current_line(), cursor[2])
  if not path then
    vim.notify('ouzel: no file:line here', vim.log.levels.INFO)
    return
  end
  local file = M.resolve(path)
  if not file then
    vim.notify(('ouzel: %s is not a file of the workspace'):format(path), vim.log.levels.WARN)
    return
  end
  vim.cmd.wincmd('p')
  if api.nvim_get_current_buf() == M.state.buf then
    vim.cmd('aboveleft split')
  end
  vim.cmd.edit(vim.fn.fnameescape(file))
  local last = api.nvim_buf_line_count(0)
  api.nvim_win_set_cursor(0, { math.max(1, math.min(line, last)), 0 })
end

--- The fenced code block around row `row` (0-based) of `lines`: its text, or nil.
--- @param lines string[]
--- @param row integer
--- @return string?
function M.block_at(lines, row)
  local open = nil
  for index, line in ipairs(lines) do
    if line:match('^%s*```') or line:match('^%s*~~~') then
      if open == nil then
        open = index
      else
        if row + 1 > open and row + 1 < index then
          return table.concat(vim.list_slice(lines, open + 1, index - 1), '\n') .. '\n'
        end
        open = nil
      end
    end
  end
  return nil
end

--- The turn a row of the chat buffer belongs to.
--- @param row integer 0-based
--- @return ouzel.ChatTurn?
local function turn_at(row)
  local found = nil
  for _, turn in ipairs(M.state.turns) do
    if turn.start <= row then
      found = turn
    end
  end
  return found
end

--- `gu`: undo the agent turn under the cursor, else the last agent turn.
function M.undo_at_cursor()
  local turn = nil
  if api.nvim_get_current_buf() == M.state.buf then
    turn = turn_at(api.nvim_win_get_cursor(0)[1] - 1)
  end
  if not (turn and turn.mode == 'agent' and turn.undo) then
    turn = M.state.last_undo
  end
  require('ouzel.agent').undo(turn)
end

--- `ga`: replace the selection the question was about with the code block under the cursor,
--- through `ouzel.applyCodeBlock` (the change is confirmed hunk by hunk like any AI edit).
function M.apply_block()
  local buf = api.nvim_get_current_buf()
  local row = api.nvim_win_get_cursor(0)[1] - 1
  local block = M.block_at(api.nvim_buf_get_lines(buf, 0, -1, false), row)
  if not block then
    vim.notify('ouzel: put the cursor inside a ``` code block', vim.log.levels.INFO)
    return
  end
  local turn = turn_at(row)
  local source = turn and turn.source
  if not source or not source.range or not api.nvim_buf_is_valid(source.bufnr) then
    vim.notify(
      "ouzel: ask about a selection (:'<,'>Ouzel chat …) to apply a block to it",
      vim.log.levels.WARN
    )
    return
  end
  local client = require('ouzel').client(source.bufnr)
  if not client then
    vim.notify('ouzel: the file of that question is no longer served', vim.log.levels.WARN)
    return
  end
  local argument = {
    textDocument = { uri = source.uri, version = vim.lsp.util.buf_versions[source.bufnr] },
    range = source.range,
    text = block,
  }
  vim.cmd.wincmd('p')
  client:request('workspace/executeCommand', {
    command = 'ouzel.applyCodeBlock',
    arguments = { argument },
  }, function(err, result)
    if err then
      vim.notify(
        'ouzel: applying the block failed: ' .. tostring(err.message),
        vim.log.levels.ERROR
      )
      return
    end
    local message, level = require('ouzel.actions').describe('Ouzel: Apply code block', result)
    vim.notify('ouzel: ' .. message, level)
  end, source.bufnr)
end

--- Show a stored conversation in the chat buffer and continue it with the next question.
--- @param client vim.lsp.Client
--- @param conversation table the `ouzel/chatLoad` result
function M.render(client, conversation)
  local buf = M.buffer()
  M.state.conversation_id = conversation.conversationId
  M.state.client_id = client.id
  M.state.turns = {}
  M.state.last_undo = nil
  local lines = {
    M.title_line(tostring(present(conversation.title) or conversation.conversationId)),
    'Rules: shown with the next answer',
    KEYS,
    '',
  }
  for _, turn in ipairs(type(conversation.turns) == 'table' and conversation.turns or {}) do
    local agent = turn.mode == 'agent'
    table.insert(lines, agent and '## You (agent)' or '## You')
    vim.list_extend(lines, vim.split(tostring(present(turn.message) or ''), '\n', { plain = true }))
    vim.list_extend(lines, { '', agent and '## Ouzel agent' or '## Ouzel' })
    local tools = present(turn.tools)
    for _, tool in ipairs(agent and type(tools) == 'table' and tools or {}) do
      local line = require('ouzel.agent').tool_line({ tool = tool })
      if line then
        table.insert(lines, line)
      end
    end
    if agent and type(tools) == 'table' and #tools > 0 then
      table.insert(lines, '')
    end
    if type(turn.references) == 'table' then
      remember(turn.references)
      vim.list_extend(lines, M.reference_lines(turn.references))
    end
    local reply = tostring(present(turn.reply) or ''):gsub('\r\n?', '\n')
    vim.list_extend(lines, vim.split(reply, '\n', { plain = true }))
    if turn.status and turn.status ~= 'done' then
      vim.list_extend(lines, { '', ('_(%s)_'):format(turn.status) })
    end
    table.insert(lines, '')
  end
  edit(buf, function()
    api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  end)
  M.open()
  api.nvim_win_set_cursor(0, { api.nvim_buf_line_count(buf), 0 })
end

--- Load conversation `id` and show it.
--- @param client vim.lsp.Client
--- @param id string
function M.resume(client, id)
  client:request('ouzel/chatLoad', { conversationId = id }, function(err, result)
    if err or type(result) ~= 'table' then
      vim.notify(
        'ouzel: cannot load the conversation: ' .. tostring(err and err.message or 'no result'),
        vim.log.levels.ERROR
      )
      return
    end
    M.render(client, result)
  end)
end

--- One line of the history picker.
--- @param item table a conversation of `ouzel/chatList`
--- @return string
function M.format_conversation(item)
  local updated = tostring(present(item.updated) or ''):gsub('T', ' '):sub(1, 16)
  return ('%s  (%s turn%s, %s)'):format(
    tostring(present(item.title) or item.conversationId),
    tostring(item.turns),
    item.turns == 1 and '' or 's',
    updated
  )
end

--- `:Ouzel chat history`: pick a past conversation (`vim.ui.select`) and resume it.
function M.history()
  local client = client_for(api.nvim_get_current_buf())
  if not client then
    vim.notify('ouzel: no server is running', vim.log.levels.WARN)
    return
  end
  client:request('ouzel/chatList', { limit = 50 }, function(err, result)
    if err then
      vim.notify(
        'ouzel: cannot list conversations: ' .. tostring(err.message),
        vim.log.levels.ERROR
      )
      return
    end
    local items = type(result) == 'table' and result.conversations or {}
    if type(items) ~= 'table' or #items == 0 then
      vim.notify('ouzel: no past conversations in this workspace', vim.log.levels.INFO)
      return
    end
    vim.ui.select(items, {
      prompt = 'Ouzel conversations',
      format_item = M.format_conversation,
    }, function(choice)
      if type(choice) == 'table' and type(choice.conversationId) == 'string' then
        M.resume(client, choice.conversationId)
      end
    end)
  end)
end

--- Start a new conversation: the next question does not continue the last one.
function M.new()
  local buf = M.state.buf
  if buf and api.nvim_buf_is_valid(buf) then
    api.nvim_buf_delete(buf, { force = true })
  end
  M.state = { turns = {}, references = {}, mode = M.state.mode or 'chat' }
  M.open()
end

return M
