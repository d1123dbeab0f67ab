import { countChatTokens, countTokens } from './tokenizer';

describe('countTokens', () => {
  it('counts cl100k_base tokens', () => {
    expect(countTokens('')).toBe(0);
    expect(countTokens('hello world')).toBe(2);
    expect(countTokens('The quick brown fox jumps over the lazy dog.')).toBe(10);
  });

  it('counts text that looks like a special token as plain text instead of refusing it', () => {
    expect(countTokens('a <|endoftext|> b')).toBeGreaterThan(3);
  });

  it('counts Chinese text', () => {
    expect(countTokens('你好，世界')).toBeGreaterThan(0);
  });

  it('counts in o200k_base when asked, where the larger vocabulary takes fewer tokens for Japanese', () => {
    const text = 'こんにちは世界、今日はいい天気ですね。';
    expect(countTokens(text, 'cl100k_base')).toBe(countTokens(text));
    expect(countTokens(text, 'o200k_base')).toBeLessThan(countTokens(text, 'cl100k_base'));
    expect(countTokens('hello world', 'o200k_base')).toBe(2);
    expect(countTokens('', 'o200k_base')).toBe(0);
    expect(countTokens('a <|endoftext|> b', 'o200k_base')).toBeGreaterThan(3);
  });

  it('handles a prompt of megabytes', () => {
    const sentence = 'Schedulers place inference work onto GPUs with headroom to spare. ';
    const prompt = sentence.repeat(20_000); // about 1.3 MB
    const count = countTokens(prompt);
    expect(count).toBeGreaterThan(prompt.length / 8);
    expect(count).toBeLessThan(prompt.length / 2);
  });
});

describe('countChatTokens', () => {
  it('adds the chat template framing to the content of every turn', () => {
    const messages = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'hello world' },
    ];
    const content = countTokens('You are terse.') + countTokens('hello world');
    // [gMASK]<sop>, <|role|>\n per turn, <|assistant|> to prime the reply.
    expect(countChatTokens(messages)).toBe(content + 2 + 2 * 2 + 1);
  });

  it('counts the content in the tokenizer it is given', () => {
    const messages = [{ role: 'user', content: 'Привет, как дела? Это тест.' }];
    expect(countChatTokens(messages, 'o200k_base')).toBe(countTokens(messages[0]?.content ?? '', 'o200k_base') + 2 + 2 + 1);
    expect(countChatTokens(messages, 'o200k_base')).not.toBe(countChatTokens(messages));
  });

  it('grows with every turn', () => {
    const one = countChatTokens([{ role: 'user', content: 'hi' }]);
    const two = countChatTokens([
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hi' },
    ]);
    expect(two).toBeGreaterThan(one);
  });
});
