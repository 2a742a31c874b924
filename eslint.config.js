import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'coverage/**', 'dist/**', 'dist.build-*/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-non-null-assertion': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // The levels (README, Layout): cli → demo → harness → agent/consumer/api → producer/results → sim → core. A level
  // imports only from the ones below it; these are the seams the simulator must never cross into production code.
  {
    files: ['src/agent/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/sim/*', '**/sim', '**/harness/*', '**/harness', '**/demo/*', '**/cli/*'],
              message: 'src/agent runs in production: it must not import the simulator, the harness, the demo or the CLI.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/sim/**/*.ts', 'src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/agent/*', '**/harness/*', '**/consumer/*', '**/producer/*', '**/results/*', '**/api/*', '**/demo/*', '**/cli/*'],
              message: 'src/sim and src/core are the lowest levels: they import only from src/core (the simulator is faithful to LiveKit, not to our code).',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['bin/**/*.mjs', 'scripts/**/*.mjs', 'test/fixtures/**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
