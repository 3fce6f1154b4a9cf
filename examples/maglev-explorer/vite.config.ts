import { defineConfig } from 'vite'

// Resolve @membrane/maglev from its TypeScript source, so the page needs no build of the package.
export default defineConfig({ resolve: { conditions: ['@membrane/source'] } })
