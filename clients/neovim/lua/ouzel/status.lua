--- What the server is doing: `$/progress` for the statusline, `ouzel/status` for `:Ouzel status`.

local M = {}

--- Work in progress per client and token, from `LspProgress` (kept here rather than read
--- from `client.progress`, which `vim.lsp.status()` consumes).
--- @type table<integer, table<string|integer, {title: string, message?: string, percentage?: integer}>>
M.progress = {}

--- The `LspProgress` autocmd of plugin/ouzel.lua calls this for ouzel clients.
--- @param client_id integer
--- @param params {token: string|integer, value: table}
function M.on_progress(client_id, params)
  local value = type(params) == 'table' and params.value
  if type(value) ~= 'table' then
    return
  end
  local jobs = package.loaded['ouzel.jobs']
  if jobs then
    jobs.on_progress(client_id, params)
  end
  local work = M.progress[client_id] or {}
  M.progress[client_id] = work
  if value.kind == 'end' then
    work[params.token] = nil
  elseif value.kind == 'begin' then
    work[params.token] =
      { title = value.title or '', message = value.message, percentage = value.percentage }
  elseif value.kind == 'report' and work[params.token] then
    local entry = work[params.token]
    entry.message = value.message or entry.message
    entry.percentage = value.percentage or entry.percentage
  end
  vim.cmd.redrawstatus({ bang = true })
end

--- @param client_id integer
function M.forget(client_id)
  M.progress[client_id] = nil
end

--- The newest line of progress of a client, e.g. "Loading model: 40%".
--- @param client_id integer
--- @return string?
function M.progress_line(client_id)
  local parts = {}
  for _, entry in pairs(M.progress[client_id] or {}) do
    local line = entry.title
    if entry.message and entry.message ~= '' then
      line = line .. ': ' .. entry.message
    end
    if entry.percentage then
      line = ('%s %d%%'):format(line, entry.percentage)
    end
    table.insert(parts, line)
  end
  if #parts == 0 then
    return nil
  end
  table.sort(parts)
  return table.concat(parts, ', ')
end

function M.statusline()
  local ouzel = package.loaded['ouzel']
  local client = ouzel and ouzel.client()
  if not client then
    return ''
  end
  if not ouzel.enabled() then
    return 'ouzel: off'
  end
  local progress = M.progress_line(client.id)
  return progress and ('ouzel: ' .. progress) or 'ouzel'
end

--- @param value any
--- @return string
local function show(value)
  if type(value) == 'table' then
    if vim.islist(value) then
      local items = {}
      for _, item in ipairs(value) do
        table.insert(items, show(item))
      end
      return table.concat(items, ', ')
    end
    return vim.inspect(value, { newline = ' ', indent = '' })
  end
  if value == vim.NIL then
    return '-'
  end
  return tostring(value)
end

--- The `ouzel/status` result as readable lines: the basics first, then one block per section.
--- @param client vim.lsp.Client
--- @param result table
--- @return string[]
function M.format(client, result)
  local lines = {
    ('ouzel %s (%s)'):format(show(result.version), require('ouzel.connect').describe(client)),
  }
  local basics = {
    { 'client', result.client },
    { 'position encoding', result.positionEncoding },
    { 'workspace', result.workspaceFolders },
    { 'open documents', result.openDocuments },
    { 'suggestions', require('ouzel').enabled() and 'on' or 'off (:Ouzel toggle)' },
  }
  for _, row in ipairs(basics) do
    if row[2] ~= nil then
      table.insert(lines, ('  %-18s %s'):format(row[1], show(row[2])))
    end
  end
  local known = {
    version = true,
    client = true,
    positionEncoding = true,
    workspaceFolders = true,
    openDocuments = true,
  }
  local names = vim.tbl_keys(result)
  table.sort(names)
  for _, name in ipairs(names) do
    local section = result[name]
    if not known[name] then
      if type(section) == 'table' and not vim.islist(section) then
        table.insert(lines, '  ' .. name)
        local keys = vim.tbl_keys(section)
        table.sort(keys)
        for _, key in ipairs(keys) do
          table.insert(lines, ('    %-16s %s'):format(key, show(section[key])))
        end
      else
        table.insert(lines, ('  %-18s %s'):format(name, show(section)))
      end
    end
  end
  local progress = M.progress_line(client.id)
  if progress then
    table.insert(lines, '  in progress        ' .. progress)
  end
  local jobs = package.loaded['ouzel.jobs']
  local running = jobs and jobs.running() or {}
  if #running > 0 then
    local list = table.concat(running, ', ')
    table.insert(lines, '  running            ' .. list .. ' (:Ouzel cancel)')
  end
  return lines
end

--- `:Ouzel status`: ask the server and echo the answer.
function M.show()
  local client = require('ouzel').any_client()
  if not client then
    vim.notify(
      "ouzel: no server is running; open a file after vim.lsp.enable('ouzel')",
      vim.log.levels.WARN
    )
    return
  end
  client:request('ouzel/status', nil, function(err, result)
    if err then
      vim.notify('ouzel: ouzel/status failed: ' .. tostring(err.message), vim.log.levels.ERROR)
      return
    end
    local lines = M.format(client, type(result) == 'table' and result or {})
    vim.api.nvim_echo({ { table.concat(lines, '\n') } }, true, {})
  end)
end

return M
