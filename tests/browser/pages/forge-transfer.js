// A page forging a request to Veil's transfer frame (web-accessible), without a ticket.
async (url) => {
    const frame = document.createElement('iframe');
    frame.src = url;
    document.body.append(frame);
    await new Promise((resolve) => frame.addEventListener('load', resolve));
    const channel = new MessageChannel();
    const photo = await (await fetch('/form')).blob();
    // The frame first says 'accepted' to any well-formed request; the verdict comes after.
    const reply = new Promise((resolve) => {
        channel.port1.onmessage = (e) => { if (e.data?.kind !== 'accepted') resolve(e.data); };
    });
    frame.contentWindow.postMessage(
        { kind: 'cloak', ticket: crypto.randomUUID(), name: 'x.jpg', type: 'image/jpeg', photo },
        '*', [channel.port2]);
    return await Promise.race([reply, new Promise((r) => setTimeout(() => r('no answer'), 5000))]);
}
