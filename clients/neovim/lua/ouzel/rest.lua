--- Tells the server where the cursor rests (`ouzel/cursorRest`), so it can warm the
--- model's cache for a suggestion there before the first keystroke. Sent on CursorHold and
--- CursorHoldI (after 'updatetime' without moving), once per place and buffer change.
local api = vim.api

local M = {}

local METHOD = 'ouzel/cursorRest'

--- @param client vim.lsp.Client
--- @param bufnr integer
function M.attach(client, bufnr)
  local group = api.nvim_create_augroup('ouzel.rest.' .. bufnr, { clear = true })
  local last = nil
  api.nvim_create_autocmd({ 'CursorHold', 'CursorHoldI' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      if client:is_stopped() or api.nvim_get_current_buf() ~= bufnr then
        return
      end
      local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
      local place = table.concat({
        api.nvim_buf_get_changedtick(bufnr),
        params.position.line,
        params.position.character,
      }, ':')
      if place == last then
        return
      end
      last = place
      client:notify(METHOD, params)
    end,
  })
  api.nvim_create_autocmd({ 'BufWipeout', 'BufUnload' }, {
    group = group,
    buffer = bufnr,
    once = true,
    callback = function()
      pcall(api.nvim_del_augroup_by_id, group)
    end,
  })
end

return M
