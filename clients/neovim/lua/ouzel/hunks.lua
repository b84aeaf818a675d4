--- The pure part of confirming a `workspace/applyEdit`: which changes need the user's
--- confirmation, grouped into hunks (one per change annotation and document), what the
--- diff float shows for a hunk, and the workspace edit that holds only the accepted hunks.
--- No windows, no buffers are touched here (the caller passes a document's lines), so every
--- rule can be tested headless.

local M = {}

--- @class ouzel.Hunk
--- @field index integer 1-based, in the order the edit lists its changes
--- @field uri string the document (for a rename: the old name)
--- @field annotation_id string
--- @field label string the annotation's label, or why there is none
--- @field description? string the annotation's description
--- @field missing boolean the edit names an annotation the edit does not define
--- @field edits lsp.TextEdit[] text edits of the hunk (empty for a file operation)
--- @field operation? table a CreateFile, RenameFile or DeleteFile

--- @param value any
--- @return any value, with JSON null as nil
local function present(value)
  if value == vim.NIL then
    return nil
  end
  return value
end

--- The annotation of a change, and whether it needs confirmation. An id the edit does not
--- define counts as needing it: the server meant to annotate it, and asking is the safe side.
--- @param annotations table<string, table>
--- @param id any
--- @return table? annotation
--- @return boolean confirm
local function annotation_of(annotations, id)
  id = present(id)
  if id == nil then
    return nil, false
  end
  local annotation = annotations[id]
  if type(annotation) ~= 'table' then
    return nil, true
  end
  return annotation, present(annotation.needsConfirmation) == true
end

--- Every change of a workspace edit in order: {uri, edit | operation, annotation id}.
--- @param edit table lsp.WorkspaceEdit
--- @return {uri: string, text_edit?: table, operation?: table, annotation_id?: string, group: integer}[]
local function changes_of(edit)
  local changes = {}
  local document_changes = present(edit.documentChanges)
  if type(document_changes) == 'table' then
    for group, change in ipairs(document_changes) do
      if type(change) == 'table' and present(change.kind) then
        local uri = present(change.uri) or present(change.oldUri)
        table.insert(changes, {
          uri = uri,
          operation = change,
          annotation_id = present(change.annotationId),
          group = group,
        })
      elseif type(change) == 'table' and type(change.textDocument) == 'table' then
        for _, text_edit in ipairs(present(change.edits) or {}) do
          table.insert(changes, {
            uri = change.textDocument.uri,
            text_edit = text_edit,
            annotation_id = present(text_edit.annotationId),
            group = group,
          })
        end
      end
    end
    return changes
  end
  local by_uri = present(edit.changes)
  if type(by_uri) == 'table' then
    local uris = vim.tbl_keys(by_uri)
    table.sort(uris)
    for group, uri in ipairs(uris) do
      for _, text_edit in ipairs(by_uri[uri]) do
        table.insert(changes, {
          uri = uri,
          text_edit = text_edit,
          annotation_id = present(text_edit.annotationId),
          group = group,
        })
      end
    end
  end
  return changes
end

--- Whether any change of `edit` needs the user's confirmation.
--- @param edit any lsp.WorkspaceEdit
--- @return boolean
function M.needs_confirmation(edit)
  if type(edit) ~= 'table' then
    return false
  end
  local annotations = present(edit.changeAnnotations) or {}
  for _, change in ipairs(changes_of(edit)) do
    local _, confirm = annotation_of(annotations, change.annotation_id)
    if confirm then
      return true
    end
  end
  return false
end

--- Whether `edit` creates, renames or deletes a file.
--- @param edit any lsp.WorkspaceEdit
--- @return boolean
function M.has_file_operations(edit)
  if type(edit) ~= 'table' then
    return false
  end
  for _, change in ipairs(changes_of(edit)) do
    if change.operation then
      return true
    end
  end
  return false
end

--- The hunks the user must decide on: one per (document, annotation), in edit order.
--- Changes that need no confirmation are not hunks; they are applied as they are.
--- @param edit table lsp.WorkspaceEdit
--- @return ouzel.Hunk[]
function M.collect(edit)
  local annotations = present(edit.changeAnnotations) or {}
  local hunks, by_key = {}, {} --- @type ouzel.Hunk[], table<string, ouzel.Hunk>
  for _, change in ipairs(changes_of(edit)) do
    local annotation, confirm = annotation_of(annotations, change.annotation_id)
    if confirm then
      local key = ('%s\0%s'):format(change.uri, change.annotation_id)
      local hunk = not change.operation and by_key[key] or nil
      if not hunk then
        local label = annotation and present(annotation.label)
          or ('annotation %q is missing from the edit'):format(tostring(change.annotation_id))
        hunk = {
          index = #hunks + 1,
          uri = change.uri,
          annotation_id = change.annotation_id,
          label = tostring(label),
          description = annotation and present(annotation.description) or nil,
          missing = annotation == nil,
          edits = {},
          operation = change.operation,
        }
        table.insert(hunks, hunk)
        if not change.operation then
          by_key[key] = hunk
        end
      end
      if change.text_edit then
        table.insert(hunk.edits, change.text_edit)
      end
    end
  end
  return hunks
end

--- Whether a text edit is well formed: a range of non-negative integers and a string.
--- @param text_edit any
--- @return boolean
function M.valid_text_edit(text_edit)
  if type(text_edit) ~= 'table' or type(text_edit.newText) ~= 'string' then
    return false
  end
  local range = text_edit.range
  if type(range) ~= 'table' then
    return false
  end
  for _, position in ipairs({ range.start, range['end'] }) do
    if
      type(position) ~= 'table'
      or type(position.line) ~= 'number'
      or type(position.character) ~= 'number'
      or position.line < 0
      or position.character < 0
    then
      return false
    end
  end
  return true
end

--- The first malformed change of an edit, described, or nil when all are well formed.
--- @param edit table lsp.WorkspaceEdit
--- @return string?
function M.problem(edit)
  for _, change in ipairs(changes_of(edit)) do
    if type(change.uri) ~= 'string' then
      return 'a change has no document uri'
    end
    if change.text_edit and not M.valid_text_edit(change.text_edit) then
      return ('a text edit of %s has a malformed range or newText'):format(change.uri)
    end
  end
  return nil
end

--- A byte column of `line` for an LSP character in `encoding`, clamped to the line.
--- @param line string
--- @param character integer
--- @param encoding string
--- @return integer
function M.byte_col(line, character, encoding)
  if encoding == 'utf-8' then
    return math.min(character, #line)
  end
  local ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  return ok and math.min(col, #line) or #line
end

--- A text edit's range as 0-based (row, byte col) pairs of `lines`, clamped to the text
--- (a position past the last line is the end of the text, as Neovim applies it).
--- @param lines string[]
--- @param range lsp.Range
--- @param encoding string
--- @return integer, integer, integer, integer, boolean
local function byte_range(lines, range, encoding)
  local function at(position)
    if position.line >= #lines then
      return #lines - 1, #lines[#lines]
    end
    local line = lines[position.line + 1]
    return position.line, M.byte_col(line, position.character, encoding)
  end
  local srow, scol = at(range.start)
  local erow, ecol = at(range['end'])
  local past_end = range['end'].line >= #lines
  if erow < srow or (erow == srow and ecol < scol) then
    return erow, ecol, srow, scol, past_end
  end
  return srow, scol, erow, ecol, past_end
end

--- `lines` (a document, without line breaks) with `edits` applied, as a new list.
--- The ranges refer to `lines` before any edit, as LSP says; `\r\n` counts as one break.
--- @param lines string[]
--- @param edits lsp.TextEdit[]
--- @param encoding string 'utf-8'|'utf-16'|'utf-32'
--- @return string[]
function M.apply(lines, edits, encoding)
  local rows = vim.deepcopy(lines)
  if #rows == 0 then
    rows = { '' }
  end
  local spans = {}
  local past_end = false
  for index, text_edit in ipairs(edits) do
    local srow, scol, erow, ecol, beyond = byte_range(rows, text_edit.range, encoding)
    past_end = past_end or beyond
    table.insert(spans, { srow, scol, erow, ecol, text_edit.newText:gsub('\r\n?', '\n'), index })
  end
  table.sort(spans, function(a, b)
    if a[1] ~= b[1] then
      return a[1] > b[1]
    end
    if a[2] ~= b[2] then
      return a[2] > b[2]
    end
    return a[6] > b[6]
  end)
  for _, span in ipairs(spans) do
    local srow, scol, erow, ecol, text = span[1], span[2], span[3], span[4], span[5]
    local replaced = rows[srow + 1]:sub(1, scol) .. text .. rows[erow + 1]:sub(ecol + 1)
    local pieces = vim.split(replaced, '\n', { plain = true })
    for _ = srow, erow do
      table.remove(rows, srow + 1)
    end
    for offset, piece in ipairs(pieces) do
      table.insert(rows, srow + offset, piece)
    end
  end
  -- Neovim drops the empty last line an edit past the end leaves ('fixendofline').
  if past_end and #rows > 1 and rows[#rows] == '' then
    table.remove(rows)
  end
  return rows
end

--- The document lines a text edit touches, as [first, stop) (0-based). A range that ends at
--- character 0 of a line does not touch that line when it spans lines or inserts whole lines.
--- @param text_edit lsp.TextEdit
--- @return integer first
--- @return integer stop
local function touched(text_edit)
  local start, stop = text_edit.range.start, text_edit.range['end']
  local whole_lines = stop.character == 0
    and (
      stop.line > start.line
      or (start.character == 0 and text_edit.newText:sub(-1) == '\n')
    )
  return start.line, whole_lines and stop.line or stop.line + 1
end

--- The lines a hunk replaces and the lines it puts there, for one document's `lines`
--- (without line breaks, as a buffer holds them).
--- @param hunk ouzel.Hunk
--- @param lines string[]
--- @param encoding string 'utf-8'|'utf-16'|'utf-32'
--- @return string[] old
--- @return string[] new
--- @return integer first 0-based first line touched
function M.preview(hunk, lines, encoding)
  if #hunk.edits == 0 then
    return {}, {}, 0
  end
  local first, stop = math.huge, -1
  for _, text_edit in ipairs(hunk.edits) do
    local a, b = touched(text_edit)
    first, stop = math.min(first, a), math.max(stop, b)
  end
  first = math.min(first, #lines)
  stop = math.max(first, math.min(stop, #lines))
  local changed = M.apply(lines, hunk.edits, encoding)
  local shift = #changed - #(#lines == 0 and { '' } or lines)
  local old, new = {}, {}
  for row = first + 1, stop do
    table.insert(old, lines[row])
  end
  for row = first + 1, stop + shift do
    table.insert(new, changed[row])
  end
  return old, new, first
end

--- What the float shows for a hunk: lines, and highlight spans {row, group} (0-based rows).
--- @param hunk ouzel.Hunk
--- @param position integer which hunk this is (1-based)
--- @param total integer how many hunks there are
--- @param file string the document's name as shown (relative to the cwd when inside it)
--- @param old string[]
--- @param new string[]
--- @param first integer 0-based first line of `old`
--- @return string[] lines
--- @return {[1]: integer, [2]: string}[] highlights
function M.float_lines(hunk, position, total, file, old, new, first)
  local lines = {
    ('%s  (%d of %d)'):format(hunk.label, position, total),
  }
  local highlights = { { 0, 'Title' } }
  if hunk.description and hunk.description ~= '' then
    table.insert(lines, hunk.description)
  end
  if hunk.missing then
    table.insert(lines, 'Warning: the server did not describe this change')
    table.insert(highlights, { #lines - 1, 'WarningMsg' })
  end
  local operation = hunk.operation
  if operation then
    local kind = present(operation.kind)
    if kind == 'create' then
      table.insert(lines, 'create file ' .. file)
    elseif kind == 'delete' then
      table.insert(lines, 'delete file ' .. file)
    elseif kind == 'rename' then
      table.insert(
        lines,
        ('rename %s -> %s'):format(file, vim.uri_to_fname(tostring(operation.newUri)))
      )
    end
  else
    table.insert(lines, ('%s:%d'):format(file, first + 1))
  end
  table.insert(lines, '')
  for _, line in ipairs(old) do
    table.insert(lines, '- ' .. line)
    table.insert(highlights, { #lines - 1, 'OuzelDiffDelete' })
  end
  for _, line in ipairs(new) do
    table.insert(lines, '+ ' .. line)
    table.insert(highlights, { #lines - 1, 'OuzelDiffAdd' })
  end
  table.insert(lines, '')
  table.insert(lines, '[y] accept  [n] reject  [a] accept this and the rest  [q] reject the rest')
  table.insert(highlights, { #lines - 1, 'Comment' })
  return lines, highlights
end

--- The workspace edit holding the changes that need no confirmation and the accepted hunks,
--- in the original order. Emptied text document edits are left out.
--- @param edit table lsp.WorkspaceEdit
--- @param hunks ouzel.Hunk[] as `collect` made them
--- @param accepted table<integer, boolean> hunk index -> accepted
--- @return table lsp.WorkspaceEdit
function M.subset(edit, hunks, accepted)
  local keep = {} --- @type table<table, boolean> text edit or operation -> kept
  for _, hunk in ipairs(hunks) do
    local take = accepted[hunk.index] == true
    if hunk.operation then
      keep[hunk.operation] = take
    end
    for _, text_edit in ipairs(hunk.edits) do
      keep[text_edit] = take
    end
  end
  local function kept(item)
    return keep[item] ~= false
  end
  local result = { changeAnnotations = edit.changeAnnotations }
  local document_changes = present(edit.documentChanges)
  if type(document_changes) == 'table' then
    result.documentChanges = {}
    for _, change in ipairs(document_changes) do
      if present(change.kind) then
        if kept(change) then
          table.insert(result.documentChanges, change)
        end
      else
        local edits = vim.tbl_filter(kept, present(change.edits) or {})
        if #edits > 0 then
          table.insert(
            result.documentChanges,
            { textDocument = change.textDocument, edits = edits }
          )
        end
      end
    end
    return result
  end
  result.changes = {}
  for uri, text_edits in pairs(present(edit.changes) or {}) do
    local edits = vim.tbl_filter(kept, text_edits)
    if #edits > 0 then
      result.changes[uri] = edits
    end
  end
  return result
end

return M
