--- Tell the server what the user did with a suggestion (it records this locally only).
---
--- Accepting runs the item's command, as the LSP spec asks. A partial accept (a word, a line)
--- runs the same command with one more argument, `{ acceptedLength = n }`: how much of the
--- item's text is now in the buffer, in UTF-16 code units (the VS Code extension does the same).

local M = {}

--- @param item {command?: table}
--- @return table? command
local function command_of(item)
  local command = item.command
  if type(command) == 'table' and type(command.command) == 'string' then
    return command
  end
end

--- The whole suggestion was inserted.
--- @param client vim.lsp.Client
--- @param bufnr integer
--- @param item {command?: table}
function M.accepted(client, bufnr, item)
  local command = command_of(item)
  if command then
    client:exec_cmd(command, { bufnr = bufnr })
  end
end

--- Part of the suggestion was inserted.
--- @param client vim.lsp.Client
--- @param bufnr integer
--- @param item {command?: table}
--- @param accepted string the start of the item's text that is now in the buffer
function M.partially_accepted(client, bufnr, item, accepted)
  local command = command_of(item)
  if not command then
    return
  end
  local arguments = vim.deepcopy(command.arguments or {})
  table.insert(arguments, { acceptedLength = vim.str_utfindex(accepted, 'utf-16') })
  client:exec_cmd({ title = command.title, command = command.command, arguments = arguments }, {
    bufnr = bufnr,
  })
end

return M
