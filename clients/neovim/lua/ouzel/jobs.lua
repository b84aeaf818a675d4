--- Streamed requests the plugin started (code actions, chat): each has its own work-done
--- token, so its `$/progress` values (pushed by Neovim 0.11 to `LspProgress`) reach the job
--- that asked, and `:Ouzel cancel` can stop it with `window/workDoneProgress/cancel`.

local M = {}

--- @class ouzel.Job
--- @field client_id integer
--- @field request_id? integer
--- @field title string
--- @field on_progress? fun(value: table)
--- @field on_done fun(err: table?, result: any)
--- @field cancelled boolean

--- @type table<string, ouzel.Job>
M.active = {}

local counter = 0

--- A token no other job of this Neovim uses.
--- @param kind string
--- @return string
function M.new_token(kind)
  counter = counter + 1
  return ('ouzel-nvim-%s-%d-%d'):format(kind, vim.fn.getpid(), counter)
end

--- Send `method` and follow its progress on `token` (already placed in `params`).
--- @param client vim.lsp.Client
--- @param method string
--- @param params table
--- @param token string
--- @param opts {title: string, bufnr?: integer, on_progress?: fun(value: table), on_done: fun(err: table?, result: any)}
--- @return boolean sent
function M.start(client, method, params, token, opts)
  local job = {
    client_id = client.id,
    title = opts.title,
    on_progress = opts.on_progress,
    on_done = opts.on_done,
    cancelled = false,
  }
  M.active[token] = job
  local ok, request_id = client:request(method, params, function(err, result)
    M.active[token] = nil
    vim.cmd.redrawstatus({ bang = true })
    opts.on_done(err, result)
  end, opts.bufnr)
  if not ok then
    M.active[token] = nil
    return false
  end
  job.request_id = request_id
  return true
end

--- Called from `ouzel.status.on_progress` for every ouzel `$/progress`.
--- @param client_id integer
--- @param params {token: string|integer, value: table}
function M.on_progress(client_id, params)
  local job = M.active[params.token]
  if not job or job.client_id ~= client_id or not job.on_progress then
    return
  end
  local ok, err = pcall(job.on_progress, params.value)
  if not ok then
    vim.notify('ouzel: cannot show progress: ' .. tostring(err), vim.log.levels.ERROR)
  end
end

--- Ask the server to stop one job, or every job when `token` is nil.
--- @param token? string
--- @return integer how many were asked to stop
function M.cancel(token)
  local count = 0
  for job_token, job in pairs(M.active) do
    if token == nil or token == job_token then
      local client = vim.lsp.get_client_by_id(job.client_id)
      if client and not job.cancelled then
        job.cancelled = true
        client:notify('window/workDoneProgress/cancel', { token = job_token })
        count = count + 1
      end
    end
  end
  return count
end

--- A server that exits answers nothing more: end its jobs with an error (lsp/ouzel.lua's
--- `on_exit`), so a chat turn does not wait forever.
--- @param client_id integer
function M.forget(client_id)
  for token, job in pairs(M.active) do
    if job.client_id == client_id then
      M.active[token] = nil
      vim.schedule(function()
        job.on_done({ code = -32097, message = 'the server stopped' }, nil)
      end)
    end
  end
  vim.schedule(function()
    vim.cmd.redrawstatus({ bang = true })
  end)
end

--- Titles of the running jobs, for `:Ouzel status`.
--- @return string[]
function M.running()
  local titles = {}
  for _, job in pairs(M.active) do
    table.insert(titles, job.title .. (job.cancelled and ' (stopping)' or ''))
  end
  table.sort(titles)
  return titles
end

return M
