; vmfs test boot sector (BIOS, 512 bytes).
;
; Reads one sector far into the boot disk with INT 13h extended read
; (AH=42h), prints markers and that sector's printable text on COM1 by
; programming the 16550 UART at 0x3F8 directly, then halts. The e2e tests
; wait for VMFS-BOOTSECTOR-END and compare the text with guest.env.
;
; Build: nasm -f bin -DFAR_LBA=1843200 -o bootsector.bin boot.asm

bits 16
org 0x7c00

%ifndef FAR_LBA
%define FAR_LBA 1843200
%endif

COM1 equ 0x3f8
BUF  equ 0x7e00

start:
	cli
	xor ax, ax
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov sp, 0x7c00
	sti
	cld
	mov [drive], dl

	; COM1: 115200 baud (divisor 1), 8N1, interrupts off
	mov dx, COM1+1
	xor al, al
	out dx, al
	mov dx, COM1+3
	mov al, 0x80
	out dx, al
	mov dx, COM1
	mov al, 1
	out dx, al
	inc dx
	xor al, al
	out dx, al
	mov dx, COM1+3
	mov al, 3
	out dx, al

	mov si, msg_start
	call puts
	mov al, [drive]
	call puthex
	mov si, crlf
	call puts

	; INT 13h extensions present?
	mov ah, 0x41
	mov bx, 0x55aa
	mov dl, [drive]
	int 0x13
	jc no_ext
	cmp bx, 0xaa55
	jne no_ext

	; extended read of one sector at FAR_LBA into BUF
	mov si, dap
	mov ah, 0x42
	mov dl, [drive]
	int 0x13
	jc read_err

	mov si, msg_read
	call puts
	mov si, BUF
	mov cx, 512
.next:
	lodsb
	test al, al
	jz .done
	cmp al, 0x20
	jb .skip
	cmp al, 0x7e
	ja .skip
	call putc
.skip:
	loop .next
.done:
	mov si, crlf
	call puts
	mov si, msg_end
	call puts
halt:
	cli
	hlt
	jmp halt

no_ext:
	mov si, msg_noext
	call puts
	jmp halt

read_err:
	push ax
	mov si, msg_err
	call puts
	pop ax
	mov al, ah
	call puthex
	mov si, crlf
	call puts
	jmp halt

; putc writes AL to COM1 once the transmit holding register is empty.
putc:
	push dx
	push ax
	mov dx, COM1+5
.wait:
	in al, dx
	test al, 0x20
	jz .wait
	pop ax
	mov dx, COM1
	out dx, al
	pop dx
	ret

; puts writes the NUL-terminated string at DS:SI.
puts:
	lodsb
	test al, al
	jz .r
	call putc
	jmp puts
.r:
	ret

; puthex writes AL as two hex digits.
puthex:
	push ax
	shr al, 4
	call .nib
	pop ax
	and al, 0x0f
.nib:
	add al, '0'
	cmp al, '9'
	jbe .p
	add al, 7
.p:
	jmp putc

drive:	db 0
align 4
dap:	db 0x10, 0
	dw 1
	dw BUF, 0
	dq FAR_LBA

msg_start:	db 13, 10, "VMFS-BOOTSECTOR-START drive=0x", 0
msg_read:	db "VMFS-BOOTSECTOR-READ ", 0
msg_end:	db "VMFS-BOOTSECTOR-END", 13, 10, 0
msg_noext:	db "VMFS-BOOTSECTOR-ERROR no int13 extensions", 13, 10, 0
msg_err:	db "VMFS-BOOTSECTOR-ERROR read ah=0x", 0
crlf:		db 13, 10, 0

times 510-($-$$) db 0
dw 0xaa55
