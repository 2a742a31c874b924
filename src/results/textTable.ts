/** How a column's cells line up: text to the left, counts to the right. */
export type ColumnAlign = 'left' | 'right';

/** Spaces between two columns. */
const COLUMN_GAP = 2;

/**
 * Lays out rows (the header first) as text columns, each as wide as its widest cell, header included, so no cell (a
 * number with its extension, a long call id or SIP status) pushes the columns after it out of line. The last column is
 * not padded and lines carry no trailing spaces. Widths count UTF-16 units: the cells this is for are ASCII (ids,
 * E.164 numbers, outcomes, SIP reason phrases) except the last column (free text).
 */
export function textTable(rows: readonly (readonly string[])[], align: readonly ColumnAlign[], indent = ''): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  const gap = ' '.repeat(COLUMN_GAP);
  return rows.map((row) => {
    const cells = row.map((cell, i) => {
      if (i === row.length - 1 && align[i] !== 'right') return cell;
      const width = widths[i] ?? cell.length;
      return align[i] === 'right' ? cell.padStart(width) : cell.padEnd(width);
    });
    return `${indent}${cells.join(gap)}`.trimEnd();
  });
}
