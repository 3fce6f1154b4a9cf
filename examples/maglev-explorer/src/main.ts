// The browser page: the same report, recomputed as you change the inputs.
import { explore } from './explore'

const form = document.querySelector('form')!
const out = document.querySelector('pre')!

function render(): void {
  const value = (name: string) => Number((form.elements.namedItem(name) as HTMLInputElement).value)
  try {
    out.textContent = explore({
      backends: value('backends'),
      tableSize: value('tableSize'),
      heavyWeight: value('heavyWeight'),
      remove: value('remove'),
    }).lines.join('\n')
  } catch (e) {
    out.textContent = String(e)
  }
}
form.addEventListener('input', render)
render()
